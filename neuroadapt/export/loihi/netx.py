"""lava-dl netx HDF5 network files: write a :class:`LoihiNet`, read one back.

Layout (lava-dl ``netx/README.md``, reference sheet §3.1; what ``netx.hdf5.Network`` reads)::

    /layer/0/type             b"input"
    /layer/0/shape            [n_inputs]
    /layer/<i>/type           b"dense" or b"dense_rec"        (i = 1 .. n_layers)
    /layer/<i>/shape          [out]
    /layer/<i>/inFeatures     in
    /layer/<i>/outFeatures    out
    /layer/<i>/weight         (out, in)   even integers in [-256, 254]
    /layer/<i>/weight_rec     (out, out)  dense_rec only
    /layer/<i>/bias           (out,)      13-bit mantissa (netx loads it with bias_exp 6)
    /layer/<i>/neuron/{type=b"CUBA", iDecay, vDecay, vThMant, refDelay=1, gradedSpike=False}
    /simulation/{Ts=1, tSample}

Strings are fixed-length ASCII arrays of shape (1,), as lava-dl's own exporter writes them.
neuroadapt's extras (each layer's scale and role, the readout mode, the format version) are HDF5
attributes, which netx ignores.  Writing goes through :func:`neuroadapt._io.atomic_path`.
"""
from __future__ import annotations

import json
import os

import numpy as np

from neuroadapt._io import atomic_path
from neuroadapt.errors import DataError
from neuroadapt.export.loihi.quantise import LoihiLayer, LoihiNet

__all__ = ["write_netx", "read_netx", "FORMAT"]

FORMAT = "neuroadapt-loihi-netx-1"


def _str(handle, key: str, value: str) -> None:
    handle.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def write_netx(net: LoihiNet, path, t_sample: int | None = None) -> str:
    """Write ``net`` as a netx HDF5 file at ``path`` (atomically); returns the path."""
    import h5py

    path = os.fspath(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["neuroadapt_format"] = FORMAT
            f.attrs["readout_mode"] = net.readout_mode
            f.attrs["notes"] = json.dumps(net.notes, sort_keys=True)
            sim = f.create_group("simulation")
            sim.create_dataset("Ts", data=1)
            sim.create_dataset("tSample", data=int(t_sample or 0))
            lay = f.create_group("layer")
            g = lay.create_group("0")
            _str(g, "type", "input")
            g.create_dataset("shape", data=np.array([net.n_inputs], dtype=np.int64))
            for i, layer in enumerate(net.layers, start=1):
                g = lay.create_group(str(i))
                _str(g, "type", "dense_rec" if layer.weight_rec is not None else "dense")
                g.create_dataset("shape", data=np.array([layer.n_out], dtype=np.int64))
                g.create_dataset("inFeatures", data=layer.n_in)
                g.create_dataset("outFeatures", data=layer.n_out)
                g.create_dataset("weight", data=layer.weight.astype(np.int64))
                if layer.weight_rec is not None:
                    g.create_dataset("weight_rec", data=layer.weight_rec.astype(np.int64))
                g.create_dataset("bias", data=layer.bias.astype(np.int64))
                n = g.create_group("neuron")
                _str(n, "type", "CUBA")
                n.create_dataset("iDecay", data=int(layer.i_decay))
                n.create_dataset("vDecay", data=int(layer.v_decay))
                n.create_dataset("vThMant", data=int(layer.v_th_mant))
                n.create_dataset("refDelay", data=1)
                n.create_dataset("gradedSpike", data=False)
                g.attrs["name"] = layer.name
                g.attrs["scale"] = float(layer.scale)
                g.attrs["spiking"] = bool(layer.spiking)
    return path


def _read_str(ds) -> str:
    v = ds[()]
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def read_netx(path) -> LoihiNet:
    """Read a netx file (dense / dense_rec layers with CUBA neurons) back into a :class:`LoihiNet`.

    Files not written by neuroadapt load too (every layer is then taken as spiking with scale 1,
    except that a last layer without a ``neuron`` group gets netx's default integrator).
    Anything else raises :class:`~neuroadapt.errors.DataError` naming the file and the layer.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"netx file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not an HDF5 file ({exc})") from None
    with f:
        if "layer" not in f:
            raise DataError(f"{path}: no /layer group; not a lava-dl netx network file")
        keys = sorted(f["layer"].keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if not keys or not all(k.isdigit() for k in keys) or [int(k) for k in keys] != list(range(len(keys))):
            raise DataError(f"{path}: /layer holds {keys}; expected groups 0, 1, ..., n-1")
        layers, n_inputs = [], None
        for k in keys:
            g = f["layer"][k]
            where = f"{path}: /layer/{k}"
            if "type" not in g:
                raise DataError(f"{where} has no 'type'")
            kind = _read_str(g["type"])
            if kind == "input":
                if k != "0":
                    raise DataError(f"{where}: an input layer may only come first")
                if "neuron" in g:
                    raise DataError(f"{where}: input layers with neurons are not supported; inputs are spikes")
                n_inputs = int(np.prod(g["shape"][()]))
                continue
            if kind not in ("dense", "dense_rec"):
                raise DataError(f"{where}: layer type {kind!r} is not supported (dense and dense_rec only)")
            try:
                W = np.asarray(g["weight"][()], dtype=np.float64)
                R = np.asarray(g["weight_rec"][()], dtype=np.float64) if kind == "dense_rec" else None
                b = np.asarray(g["bias"][()], dtype=np.float64).reshape(-1) if "bias" in g else None
            except KeyError as exc:
                raise DataError(f"{where}: missing dataset {exc}") from None
            if W.ndim == 1:
                W = W.reshape(int(np.prod(g["shape"][()])), -1)
            for name, arr in (("weight", W), ("weight_rec", R), ("bias", b)):
                if arr is not None and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
                    raise DataError(f"{where}/{name} holds non-integer values")
            if R is not None and R.ndim == 1:
                R = R.reshape(W.shape[0], -1)
            if b is None:
                b = np.zeros(W.shape[0])
            if "neuron" in g:
                n = g["neuron"]
                ntype = _read_str(n["type"]) if "type" in n else "CUBA"
                if ntype not in ("CUBA", "LOIHI"):
                    raise DataError(f"{where}: neuron type {ntype!r} is not supported (CUBA only)")
                try:
                    i_decay, v_decay, vth = (int(n[x][()]) for x in ("iDecay", "vDecay", "vThMant"))
                except KeyError as exc:
                    raise DataError(f"{where}/neuron: missing {exc}") from None
            else:  # netx's default for a neuron-less dense layer (reference sheet §3.2)
                i_decay, v_decay, vth = 0, 4096, 1 << 17
            spiking = bool(g.attrs.get("spiking", True))
            layers.append(LoihiLayer(name=str(g.attrs.get("name", f"layer{k}")), weight=W.astype(np.int64),
                                     bias=b.astype(np.int64), i_decay=i_decay, v_decay=v_decay, v_th_mant=vth,
                                     weight_rec=None if R is None else R.astype(np.int64), spiking=spiking,
                                     scale=float(g.attrs.get("scale", 1.0))))
        if not layers:
            raise DataError(f"{path}: no dense layers")
        if n_inputs is None:
            n_inputs = layers[0].n_in
        width = n_inputs
        for layer in layers:
            if layer.n_in != width:
                raise DataError(f"{path}: layer {layer.name} takes {layer.n_in} inputs, the layer before gives "
                                f"{width}")
            width = layer.n_out
        notes = json.loads(f.attrs["notes"]) if "notes" in f.attrs else {}
        mode = f.attrs.get("readout_mode", "mean")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    return LoihiNet(layers=layers, n_inputs=int(n_inputs), readout_mode=mode, notes=notes)
