"""The docs/hlop.md example: HLOP added to a plain snnTorch model (nn.Sequential + snn.Leaky)."""
import torch
from torch import nn

snn = __import__("pytest").importorskip("snntorch")


def _tasks(T=8, n=40, seed=0):
    """Two tasks on disjoint input channels' patterns (each a random low-rank spike source)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in range(2):
        protos = (torch.rand(4, n, generator=g) < 0.3).float() * 0.8
        y = torch.randint(0, 4, (256,), generator=g)
        x = (torch.rand(T, 256, n, generator=g) < protos[y]).float()
        out.append([(x[:, i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)])
    return out


def _train(use_hlop: bool):
    from snntorch import utils

    from neuroadapt.learn.hlop import HLOP

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(40, 64), snn.Leaky(beta=0.9, init_hidden=True),
                        nn.Linear(64, 4), snn.Leaky(beta=0.9, init_hidden=True, output=True))

    def run(x):
        utils.reset(net)
        return torch.stack([net(x[t])[1] for t in range(x.shape[0])]).mean(0)   # mean membrane

    tasks = _tasks()
    # --- the docs example (five HLOP lines marked) ---------------------------------------------
    h = HLOP(net, lr=0.01, hebbian_input="rate") if use_hlop else None  # 1: attach (hooks only)
    first = None
    for task in tasks:
        if h: h.begin_task(16)                                          # 2: 16 new subspace neurons per layer
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        for epoch in range(4):
            for x, y in task:
                loss = nn.functional.cross_entropy(run(x), y)
                opt.zero_grad(); loss.backward()
                if h: h.step()                                          # 3: Hebbian update + projection
                opt.step()
        if h: h.end_task()                                              # 4: merge the subspace
        if first is None:
            first = _accuracy(run, tasks[0])
    return first, _accuracy(run, tasks[0]), h


def _accuracy(run, task):
    with torch.no_grad():
        return sum(int((run(x).argmax(1) == y).sum()) for x, y in task) / sum(len(y) for _, y in task)


def test_docs_example_protects_first_task():
    before_hlop, after_hlop, h = _train(True)
    before_plain, after_plain, _ = _train(False)
    assert h.sizes()["0"]["total"] == 32 and h.sizes()["2"]["old"] == 32
    # the first task is learned, kept with HLOP, and forgotten by plain fine-tuning
    assert before_hlop > 0.9 and before_plain > 0.9
    assert after_hlop > before_hlop - 0.05
    assert after_plain < before_plain - 0.2
