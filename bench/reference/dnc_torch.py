"""The dnc-step workload in PyTorch eager: the same Differentiable Neural Computer as
nabla::nn::dnc (Graves et al. 2016), op for op, so that the two sides compute the same loss from the
shared deterministic inputs (bench/src/dnc.rs)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import SEEDS, det_unit

EPS = 1e-6
B, T, BITS = 16, 20, 8
HIDDEN, N, W, R = 64, 32, 16, 4


def oneplus(x):
    return 1.0 + F.softplus(x)


def content_weighting(memory, keys, strengths):
    dot = keys @ memory.transpose(1, 2)  # [B, H, N]
    mn = (memory.square().sum(2) + EPS * EPS).sqrt()
    kn = (keys.square().sum(2) + EPS * EPS).sqrt()
    sim = dot / (kn.unsqueeze(2) * mn.unsqueeze(1) + EPS)
    return torch.softmax(sim * strengths.unsqueeze(2), dim=2)


def allocation_weighting(usage):
    order = torch.sort(usage.detach(), dim=1, stable=True).indices  # no gradient through the sort
    inverse = torch.argsort(order, dim=1)
    u = usage * (1.0 - EPS) + EPS
    s = u.gather(1, order)
    logs = s.log()
    a_sorted = (1.0 - s) * (logs.cumsum(1) - logs).exp()
    return a_sorted.gather(1, inverse)


class DNC(nn.Module):
    def __init__(self, inputs=BITS, outputs=BITS, hidden=HIDDEN, n=N, w=W, r=R):
        super().__init__()
        self.n, self.w, self.r, self.hidden = n, w, r, hidden
        self.controller = nn.LSTMCell(inputs + r * w, hidden)
        self.interface = nn.Linear(hidden, w * r + 3 * w + 5 * r + 3)
        self.output = nn.Linear(hidden + r * w, outputs)

    def split(self, xi):
        b, r, w = xi.shape[0], self.r, self.w
        sizes = [r * w, r, w, 1, w, w, r, 1, 1, 3 * r]
        rk, rs, wk, ws, er, wv, fg, ga, gw, rm = torch.split(xi, sizes, dim=1)
        return (rk.reshape(b, r, w), oneplus(rs), wk.reshape(b, 1, w), oneplus(ws), torch.sigmoid(er), wv,
                torch.sigmoid(fg), torch.sigmoid(ga), torch.sigmoid(gw), torch.softmax(rm.reshape(b, r, 3), dim=2))

    def forward(self, x):
        b, t, _ = x.shape
        n, w, r, dt = self.n, self.w, self.r, x.dtype
        h = torch.zeros(b, self.hidden, dtype=dt)
        c = torch.zeros(b, self.hidden, dtype=dt)
        mem = torch.zeros(b, n, w, dtype=dt)
        usage = torch.zeros(b, n, dtype=dt)
        ww = torch.zeros(b, n, dtype=dt)
        wr = torch.zeros(b, r, n, dtype=dt)
        prec = torch.zeros(b, n, dtype=dt)
        links = torch.zeros(b, n, n, dtype=dt)
        reads = torch.zeros(b, r, w, dtype=dt)
        off_diag = 1.0 - torch.eye(n, dtype=dt)
        ys = []
        for i in range(t):
            h, c = self.controller(torch.cat([x[:, i], reads.reshape(b, r * w)], 1), (h, c))
            rk, rs, wk, ws, erase, wv, free, ga, gw, modes = self.split(self.interface(h))
            keep = 1.0 - free.unsqueeze(2) * wr
            psi = keep[:, 0]
            for k in range(1, r):
                psi = psi * keep[:, k]
            usage = (usage + ww - usage * ww) * psi
            alloc = allocation_weighting(usage)
            cw = content_weighting(mem, wk, ws).squeeze(1)
            ww = gw * (ga * alloc + (1.0 - ga) * cw)
            wcol = ww.unsqueeze(2)
            mem = mem * (1.0 - wcol * erase.unsqueeze(1)) + wcol * wv.unsqueeze(1)
            links = ((1.0 - wcol - ww.unsqueeze(1)) * links + wcol * prec.unsqueeze(1)) * off_diag
            fwd = wr @ links.transpose(1, 2)
            bwd = wr @ links
            prec = (1.0 - ww.sum(1, keepdim=True)) * prec + ww
            cr = content_weighting(mem, rk, rs)
            wr = modes[:, :, 0:1] * bwd + modes[:, :, 1:2] * cr + modes[:, :, 2:3] * fwd
            reads = wr @ mem
            ys.append(self.output(torch.cat([h, reads.reshape(b, r * w)], 1)))
        return torch.stack(ys, 1)


def bits(seed):
    u = det_unit(seed, B * T * BITS)
    return torch.from_numpy((u >= 0.5).astype("float32").reshape(B, T, BITS))


def inputs(set_det_params):
    model = set_det_params(DNC(), SEEDS["dnc"])
    return model, bits(SEEDS["dnc"] + 1), bits(SEEDS["dnc"] + 2)


def training_step(model, x, y, inspect=None):
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.99, eps=1e-8)

    def step():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        if inspect:
            inspect(loss, list(model.parameters()))
        opt.step()
        return loss

    return step
