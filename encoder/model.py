"""nic's model: heavy ELIC-like analysis, mean-scale hyperprior, two shallow synthesis transforms.

Data flow (one model serves every quality and both synthesis depths)::

    x ──g_a──► y ──×gain[q]──► y_g ──h_a──► z ──round──► z_hat ──h_s──► (mu, log_sigma)
                                │                                     │
                                └──── y_hat_g = mu + round(y_g - mu) ◄┘  (SGA refines y_g, z per image)
                                                  │
                                        ×(1/gain[q])
                                                  ▼
                      g_s["jpeg"]: convT k18/s16  (depth 1, JPEG-like, linear)
                      g_s["two"] : convT k13/s8 → iGDN ─┐
                                   convT k13/s8 (linear)┴+─► convT k5/s2   (depth 2)

Yang & Mandt, "Computationally-Efficient Neural Image Compression with Shallow
Decoders", ICCV 2023. The decoder keeps the paper's layer shapes with far fewer
channels (see ``decode_kmac_per_px``); the hyper-decoder runs in integer
arithmetic at decode time (``webdecoder/hyper.py``), this float twin is what
training sees.

Variable rate: one set of weights, a learned per-channel gain vector per quality
(Cui et al. 2021). Quantisation of the *gained* latent is coarser at low
quality, the hyperprior sees the gained latent, so the decoder needs nothing
per quality but the inverse gain before the synthesis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import math

from compressai.entropy_models import EntropyBottleneck
import torch
from torch import nn
import torch.nn.functional as F

from encoder.layers import Attention, BlockDeconv, InverseGDN1, ResBlock, conv, deconv, ste_round
from webdecoder.tables import LOG_SCALE_MAX, LOG_SCALE_MIN


@dataclass
class ModelConfig:
    analysis_channels: int = 96
    latent_channels: int = 192  # C: channels of y
    hyper_channels: int = 48  # hidden width of h_a / h_s
    z_channels: int = 64
    two_hidden: int = 6  # channels of the depth-2 synthesis at 1/2 resolution
    lambdas: list[float] = field(
        default_factory=lambda: [0.001, 0.0019, 0.0035, 0.0066, 0.0125, 0.0235, 0.044, 0.083]
    )

    @property
    def qualities(self) -> int:
        return len(self.lambdas)


class Analysis(nn.Module):
    """ELIC-like g_a: four 5x5 stride-2 convs with residual bottleneck blocks and attention."""

    def __init__(self, n: int, c: int):
        super().__init__()
        self.net = nn.Sequential(
            conv(3, n), ResBlock(n),
            conv(n, n), ResBlock(n), Attention(n),
            conv(n, n), ResBlock(n),
            conv(n, c), Attention(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HyperAnalysis(nn.Sequential):
    def __init__(self, c: int, h: int, cz: int):
        super().__init__(
            conv(c, h, 3, 1), nn.ReLU(inplace=True),
            conv(h, h), nn.ReLU(inplace=True),
            conv(h, cz),
        )


class HyperSynthesis(nn.Module):
    """h_s: convT5/2 -> ReLU -> convT5/2 -> ReLU -> convT3/1, output (mu, log_sigma).

    Layer list order is what ``encoder/export.py`` quantises to integers.
    """

    def __init__(self, cz: int, h: int, c: int):
        super().__init__()
        self.layers = nn.ModuleList([deconv(cz, h, 5, 2), deconv(h, h, 5, 2), deconv(h, 2 * c, 3, 1)])

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = z_hat
        for i, layer in enumerate(self.layers):
            t = layer(t)
            if i < len(self.layers) - 1:
                t = F.relu(t)
        mu, log_sigma = t.chunk(2, dim=1)
        return mu, log_sigma


class JpegSynthesis(nn.Module):
    """Depth 1: one linear transposed conv, kernel 18, stride 16 (JPEG-like block basis)."""

    depth = 1

    def __init__(self, c: int):
        super().__init__()
        self.conv = BlockDeconv(c, 3, 18, 16)

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.conv(y_hat)


class TwoLayerSynthesis(nn.Module):
    """Depth 2: (convT k13/s8 -> iGDN) + convT k13/s8 linear residual, then convT k5/s2 to RGB."""

    depth = 2

    def __init__(self, c: int, hidden: int):
        super().__init__()
        self.up = deconv(c, hidden, 13, 8)
        self.igdn = InverseGDN1(hidden)
        self.res = deconv(c, hidden, 13, 8)
        self.out = deconv(hidden, 3, 5, 2)

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        # up and res read the same latent: one transposed conv with both weight sets (as the integer decoder
        # does) is ~15 % cheaper than two on the CPU, forward plus backward.
        both = F.conv_transpose2d(y_hat, torch.cat([self.up.weight, self.res.weight], 1),
                                  torch.cat([self.up.bias, self.res.bias]), self.up.stride, self.up.padding,
                                  self.up.output_padding)
        up, res = both.split(self.up.out_channels, dim=1)
        return self.out(self.igdn(up) + res)


def gaussian_likelihood(residual: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """P(residual) for a unit-width bin of N(0, sigma); symmetric form for accuracy in the tails."""
    v = residual.abs()
    upper = torch.special.ndtr((0.5 - v) / sigma)
    lower = torch.special.ndtr((-0.5 - v) / sigma)
    return (upper - lower).clamp_min(1e-9)


def sigma_from_log(log_sigma: torch.Tensor) -> torch.Tensor:
    """Scale used for the rate: the range of the 64-entry table the coder really uses."""
    return torch.exp(log_sigma.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX))


class NicModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.latent_channels
        self.g_a = Analysis(cfg.analysis_channels, c)
        self.h_a = HyperAnalysis(c, cfg.hyper_channels, cfg.z_channels)
        self.h_s = HyperSynthesis(cfg.z_channels, cfg.hyper_channels, c)
        self.entropy_bottleneck = EntropyBottleneck(cfg.z_channels)
        self.g_s = nn.ModuleDict({"jpeg": JpegSynthesis(c), "two": TwoLayerSynthesis(c, cfg.two_hidden)})
        # log-gains per quality, initialised so the quantisation step follows sqrt(lambda)
        lam = torch.tensor(cfg.lambdas)
        init = 0.5 * torch.log(lam / lam[len(lam) // 2])
        self.log_gain = nn.Parameter(init[:, None].repeat(1, c).contiguous())

    # -- pieces shared by training, SGA and the exporter ---------------------------------
    def gain(self, q: torch.Tensor) -> torch.Tensor:
        """Per-sample gain vector, shape (B, C, 1, 1)."""
        return torch.exp(self.log_gain[q])[:, :, None, None]

    # The transforms' outputs are cast to float32 (a no-op in float32): under bfloat16 autocast (training's
    # `precision = "bf16"`) the convolutions run in bfloat16, while gains, noise, rounding, likelihoods and
    # the distortion stay in float32, where a unit quantisation bin and a bit estimate need their precision.
    def analyse(self, x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous latents (y_g, z) of an image batch in [0, 1]; SGA starts from these."""
        y_g = self.g_a(x - 0.5).float() * self.gain(q)
        return y_g, self.h_a(y_g).float()

    def synthesise(self, y_hat_g: torch.Tensor, q: torch.Tensor, depth: str) -> torch.Tensor:
        return self.g_s[depth](y_hat_g / self.gain(q)).float() + 0.5

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> dict:
        """Training pass: noise for the rates, straight-through rounding for the synthesis."""
        y_g, z = self.analyse(x, q)
        with torch.autocast(x.device.type, enabled=False):  # the factorized prior's small products
            _, z_lik = self.entropy_bottleneck(z)
        z_hat = ste_round(z)
        mu, log_sigma = (t.float() for t in self.h_s(z_hat))
        noise = torch.empty_like(y_g).uniform_(-0.5, 0.5)
        y_lik = gaussian_likelihood(y_g + noise - mu, sigma_from_log(log_sigma))
        y_hat_g = ste_round(y_g - mu) + mu
        x_hat = {name: self.synthesise(y_hat_g, q, name) for name in self.g_s}
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}}


def decode_kmac_per_px(cfg: ModelConfig, depth: int) -> float:
    """Multiply-adds per output pixel of the whole decoder, hyper-decoder included (thousands).

    Transposed conv cost per output pixel = k*k*cin*cout / stride^2 at its output grid,
    referred to full resolution. Counted from the architecture, as the paper does.
    """
    c, h, cz, t = cfg.latent_channels, cfg.hyper_channels, cfg.z_channels, cfg.two_hidden
    hyper = 25 * cz * h / 1024 + 25 * h * h / 256 + 9 * h * 2 * c / 256
    if depth == 1:
        synth = 18 * 18 * c * 3 / 256
    else:
        synth = 2 * 13 * 13 * c * t / 256 + t * t / 4 + 25 * t * 3 / 4
    return (hyper + synth) / 1000


def config_dict(cfg: ModelConfig) -> dict:
    return asdict(cfg)


def bits(lik: torch.Tensor) -> torch.Tensor:
    """Total bits per sample of a likelihood tensor."""
    return -torch.log(lik).sum(dim=tuple(range(1, lik.dim()))) / math.log(2)


def float32_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with its floating tensors as float32: exports store float16 (``nic export``), checkpoints
    float32; integer entries are left as they are."""
    return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


def load_float32(model: NicModel, weights: dict[str, torch.Tensor]) -> NicModel:
    """Load a state dict into ``model`` as float32 (``float32_weights``)."""
    model.load_state_dict(float32_weights(weights))
    return model
