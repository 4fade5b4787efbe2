"""memn2n-step in PyTorch eager: the end-to-end memory network of nabla's `memnn-babi` experiment
(Sukhbaatar et al. 2015: 3 hops, adjacent weight tying, position and temporal encoding), one training
step at batch 32: forward, cross-entropy summed over the batch, backward, clipping to norm 40, SGD (lr 0.01).

Inputs and initial parameters come from the shared deterministic generator (common.det_unit,
common.det_normal), built exactly as bench/src/memn2n.rs builds them, so the two sides' losses and
gradient sums agree.
"""

import numpy as np
import torch
import torch.nn.functional as F

from common import det_normal, det_unit, grad_summary

SEED = 50
B, M, J, V, D, HOPS = 32, 50, 8, 40, 20, 3


def det_ints(seed, n, lo, span):
    return (lo + np.floor(det_unit(seed, n) * span)).astype(np.int64)


def inputs():
    words = det_ints(SEED * 1000 + 1, B * M * J, 1, V - 1).reshape(B, M, J)
    sent_len = det_ints(SEED * 1000 + 2, B * M, 3, J - 2).reshape(B, M)
    story_len = det_ints(SEED * 1000 + 3, B, 10, M - 9)
    qwords = det_ints(SEED * 1000 + 4, B * J, 1, V - 1).reshape(B, J)
    answers = det_ints(SEED * 1000 + 5, B, 1, V - 1)
    story = np.zeros((B, M, J), dtype=np.int64)
    query = np.zeros((B, J), dtype=np.int64)
    for b in range(B):
        for m in range(story_len[b]):
            n = sent_len[b, m]
            story[b, m, :n] = words[b, m, :n]
        query[b, :4] = qwords[b, :4]
    return torch.from_numpy(story), torch.from_numpy(query), torch.from_numpy(answers)


def position_encoding():
    j = np.arange(1, J + 1, dtype=np.float64)[:, None]
    k = np.arange(1, D + 1, dtype=np.float64)[None, :]
    return torch.from_numpy(((1 - j / J) - (k / D) * (1 - 2 * j / J)).astype(np.float32))


def params():
    e = [torch.from_numpy(det_normal(SEED * 1000 + 10 + k, (V, D)) * np.float32(0.1)) for k in range(HOPS + 1)]
    t = [torch.from_numpy(det_normal(SEED * 1000 + 20 + k, (M, D)) * np.float32(0.1)) for k in range(HOPS + 1)]
    return [p.requires_grad_() for p in e + t]


class MemN2N:
    def __init__(self, ps):
        self.params = ps
        self.E, self.T = ps[: HOPS + 1], ps[HOPS + 1:]
        self.pe = position_encoding()

    def forward(self, story, query):
        sw = (story != 0).float().unsqueeze(-1) * self.pe  # [B, M, J, D]
        qw = (query != 0).float().unsqueeze(-1) * self.pe  # [B, J, D]
        empty = (story == 0).all(-1)  # [B, M]

        def slots(k):
            return (self.E[k][story] * sw).sum(2) + self.T[k]

        u = (self.E[0][query] * qw).sum(1)
        keys = slots(0)
        for k in range(1, HOPS + 1):
            values = slots(k)
            scores = torch.bmm(keys, u.unsqueeze(-1)).squeeze(-1).masked_fill(empty, -1e30)
            p = scores.softmax(-1)
            u = u + torch.bmm(p.unsqueeze(1), values).squeeze(1)
            keys = values
        return u @ self.E[HOPS].t()


def make_step():
    net = MemN2N(params())
    opt = torch.optim.SGD(net.params, lr=0.01)
    story, query, answers = inputs()

    def step(inspect=None):
        opt.zero_grad()
        loss = F.cross_entropy(net.forward(story, query), answers, reduction="sum")
        loss.backward()
        if inspect:
            inspect(loss, net.params)
        torch.nn.utils.clip_grad_norm_(net.params, 40.0)
        opt.step()
        return loss

    return step


def check():
    out = {}

    def inspect(loss, ps):
        out.update(loss=loss.item(), **grad_summary([p.grad.numpy() for p in ps]))

    step = make_step()
    step(inspect)
    out["loss_step2"] = step().item()
    return out
