"""Cross-layer transcoders on disk, in circuit-tracer's layout; lazy reading of large decoders.

The layout is the one circuit-tracer 0.5.0 writes (``CrossLayerTranscoder.to_safetensors``)
and reads (``load_clt``), for a CLT over ``n`` layers, normalisation folded:

- ``W_enc_{i}.safetensors``: ``W_enc_{i}`` ``[d_sae, d_in]`` (latents as rows: the transpose
  of interp's ``[d_in, d_sae]``), ``b_enc_{i}`` ``[d_sae]``, ``b_dec_{i}`` ``[d_out]`` (output
  layer ``i``'s bias) and, for JumpReLU, ``threshold_{i}`` ``[d_sae]``;
- ``W_dec_{i}.safetensors``: ``W_dec_{i}`` ``[d_sae, n - i, d_out]``: latent ``f`` of layer
  ``i`` into output layer ``i + j`` is ``W_dec_{i}[f, j]`` (source-major; interp's pair table
  in memory is output-major, :mod:`interp.kernels.cross_layer`);
- ``W_skip_{i}.safetensors`` (interp only): ``W_skip_{i}`` ``[d_in, d_out]``, applied as
  ``x @ W_skip_{i}`` (circuit-tracer's orientation; interp's ``W_skip[i]`` is its transpose);
- ``config.yaml``: circuit-tracer's hub keys (``model_kind: cross_layer_transcoder``,
  ``feature_input_hook``, ``feature_output_hook``, ``model_name``) and an ``interp`` key (the
  architecture, its full config and the model layers), written as JSON, which YAML reads.

circuit-tracer computes a ReLU or JumpReLU CLT without a skip path from these files
(``load_clt`` reads no ``W_skip``), and places file ``i`` at model layer ``i``. interp writes
ReLU, JumpReLU and TopK-over-all-layers CLTs (whose inference rule is a JumpReLU at the
learned ``topk_threshold``, written as every latent's ``threshold_{i}``) under the names above,
so ``load_clt`` computes exactly what interp does. A CLT it would compute differently (TopK
per layer, a skip path) gets encoder files named ``interp_W_enc_{i}.safetensors``: ``load_clt``
then finds no ``W_enc_0.safetensors`` and refuses it rather than running another function.
A CLT whose layers are not ``0..n-1`` loads in circuit-tracer but at the wrong layers; interp
reads its true layers from ``config.yaml``.

:func:`load_clt` reads either kind of directory, also ones circuit-tracer wrote (no
``config.yaml``: JumpReLU when thresholds are present, else ReLU, layers ``0..n-1``,
``input_site`` as given). With ``lazy_decoder=True`` the decoder stays on disk
(:class:`LazyDecoder`): only the rows of the latents a call needs are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import torch
from safetensors import safe_open

from interp.errors import StoreError
from interp.hooks import hook_name
from interp.io import atomic_write, atomic_write_text
from interp.transcoders import formats, registry
from interp.transcoders.clt import CrossLayerTranscoder, pairs_from_sources
from interp.transcoders.data import InputSite, cross_layer_wiring

CONFIG_FILE = "config.yaml"
MODEL_KIND = "cross_layer_transcoder"
_HOOKS = {site: hook_name(site, 0).split(".", 2)[2] for site in get_args(InputSite)}
"""interp's input sites as circuit-tracer's block-relative hook names (``hook_resid_mid``, ``ln2.hook_normalized``)."""
_OUTPUT_HOOK = "hook_mlp_out"


def circuit_tracer_reads(clt: CrossLayerTranscoder) -> bool:
    """Whether circuit-tracer's ``load_clt`` computes the same function as ``clt``."""
    cfg = clt.cfg
    return not cfg.skip_connection and (cfg.activation != "topk" or cfg.topk_over == "all")


def _encoder_file(directory: Path, i: int, native: bool) -> Path:
    return directory / f"{'' if native else 'interp_'}W_enc_{i}.safetensors"


def is_clt_dir(directory: str | Path) -> bool:
    """True for a directory holding a CLT in this layout (interp's or circuit-tracer's)."""
    directory = Path(directory)
    return any((directory / name).is_file() for name in ("W_enc_0.safetensors", "interp_W_enc_0.safetensors"))


def save_clt(clt: CrossLayerTranscoder, directory: str | Path, *, metadata: dict | None = None) -> Path:
    """Write ``clt`` (normalisation folded) to ``directory`` in the layout above, atomically per file."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    folded = clt.folded()
    native = circuit_tracer_reads(clt)
    decoders = [folded.decoder_vectors(layer) for layer in folded.layers]
    for i in range(folded.n_layers):
        enc = {f"W_enc_{i}": cpu(folded.W_enc[i].T), f"b_enc_{i}": cpu(folded.b_enc[i]), f"b_dec_{i}": cpu(folded.b_dec[i])}
        if folded.cfg.activation == "jumprelu":
            enc[f"threshold_{i}"] = cpu(folded.threshold[i])
        elif folded.cfg.activation == "topk" and folded.cfg.topk_over == "all":
            enc[f"threshold_{i}"] = cpu(folded.topk_threshold.expand(folded.d_sae))
        files = {_encoder_file(directory, i, native): enc, directory / f"W_dec_{i}.safetensors": {f"W_dec_{i}": cpu(decoders[i])}}
        if folded.cfg.skip_connection:
            files[directory / f"W_skip_{i}.safetensors"] = {f"W_skip_{i}": cpu(folded.W_skip[i].T)}
        for path, tensors in files.items():
            with atomic_write(path) as tmp:
                save_file(tensors, str(tmp))
    config = {
        "model_kind": MODEL_KIND,
        "feature_input_hook": _HOOKS[clt.cfg.input_site],
        "feature_output_hook": _OUTPUT_HOOK,
        **formats.trained_on(clt),
        **(metadata or {}),
        "interp": {"architecture": clt.arch, "config": _config_dict(clt), "layers": list(clt.layers)},
    }
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return directory


def cpu(t: torch.Tensor) -> torch.Tensor:
    """A float32, contiguous CPU copy, as the files hold tensors."""
    return t.detach().float().cpu().contiguous()


def _config_dict(clt: CrossLayerTranscoder) -> dict:
    from dataclasses import asdict

    return asdict(clt.cfg)


def read_clt_config(directory: str | Path) -> dict:
    """``config.yaml`` of a CLT directory as a dict (empty when absent: a circuit-tracer save)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return {}
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml
        except ImportError as err:
            raise StoreError(f"{path} is YAML; install PyYAML to read it (interp writes it as JSON)") from err
        return yaml.safe_load(text) or {}


class LazyDecoder:
    """A CLT's decoder read from its ``W_dec_{i}.safetensors`` files on demand (never all at once)."""

    def __init__(self, directory: str | Path, n_layers: int) -> None:
        self.directory = Path(directory)
        self.paths = [self.directory / f"W_dec_{i}.safetensors" for i in range(n_layers)]
        missing = [p.name for p in self.paths if not p.is_file()]
        if missing:
            raise StoreError(f"{self.directory} lacks the decoder files {missing}")
        with safe_open(str(self.paths[0]), framework="pt", device="cpu") as f:
            d_sae, _, d_out = f.get_slice("W_dec_0").get_shape()
        self.shape = (n_layers, d_sae, d_out)

    def rows(self, i: int, features: torch.Tensor | None = None) -> torch.Tensor:
        """Layer ``i``'s decoder rows ``[n, n_layers - i, d_out]`` for ``features`` (all when None), float32."""
        with safe_open(str(self.paths[i]), framework="pt", device="cpu") as f:
            block = f.get_slice(f"W_dec_{i}")
            out = block[:] if features is None else block[features.detach().cpu().long()]
        return out.float()


def load_clt(
    directory: str | Path,
    *,
    device: str | torch.device = "cpu",
    lazy_decoder: bool = False,
    input_site: str | None = None,
) -> CrossLayerTranscoder:
    """Load a CLT saved by :func:`save_clt` or by circuit-tracer (see the module docstring).

    ``lazy_decoder`` keeps the decoder on disk. ``input_site`` ('resid_mid' or 'ln2_normalized')
    overrides what a directory without interp's config says it reads. Files written before
    interp took TransformerLens' site names say ``input_site: mlp_in`` for ``ln2_normalized``
    (their ``feature_input_hook`` is ``ln2.hook_normalized``) and load as that.
    """
    directory = Path(directory)
    if not is_clt_dir(directory):
        raise StoreError(f"{directory} holds no W_enc_0.safetensors: it is not a cross-layer transcoder in circuit-tracer's layout")
    config = read_clt_config(directory)
    native = (directory / "W_enc_0.safetensors").is_file()
    stem = _encoder_file(directory, 0, native).name[: -len("0.safetensors")]
    found = sorted(int(p.name[len(stem) : -len(".safetensors")]) for p in directory.glob(f"{stem}*.safetensors")
                   if p.name[len(stem) : -len(".safetensors")].isdigit())
    n_layers = len(found)
    if found != list(range(n_layers)):
        raise StoreError(f"{directory}: encoder files for layers {found}; a CLT needs 0..{n_layers - 1} without gaps")
    arch = registry.get("clt")
    with safe_open(str(_encoder_file(directory, 0, native)), framework="pt", device="cpu") as f:
        d_sae, d_in = f.get_slice("W_enc_0").get_shape()
        (d_out,) = f.get_slice("b_dec_0").get_shape()
        has_threshold = "threshold_0" in f.keys()  # noqa: SIM118 - a safetensors file, not a dict
    if "interp" in config:
        settings = dict(config["interp"]["config"])
        if settings.get("input_site") == "mlp_in":  # interp's name of ln2_normalized before TransformerLens' names
            settings["input_site"] = "ln2_normalized"
        cfg = arch.config(**settings)
        layers = list(config["interp"]["layers"])
    else:
        site = input_site or _site_of(config.get("feature_input_hook", _HOOKS["resid_mid"]), directory)
        cfg = arch.config(d_in=d_in, d_out=d_out, d_sae=d_sae, n_layers=n_layers, input_site=site,
                          activation="jumprelu" if has_threshold else "relu",
                          skip_connection=(directory / "W_skip_0.safetensors").is_file())
        layers = list(range(n_layers))
    if config.get("feature_output_hook", _OUTPUT_HOOK) != _OUTPUT_HOOK:
        raise StoreError(f"{directory} writes {config['feature_output_hook']!r}; interp's CLTs write {_OUTPUT_HOOK!r}")
    if (cfg.n_layers, cfg.d_sae, cfg.d_in, cfg.d_out) != (n_layers, d_sae, d_in, d_out):
        raise StoreError(f"{directory}: the files hold {n_layers} layers of {d_sae} x {d_in} -> {d_out}, the config says otherwise")
    clt = arch.transcoder(cfg, lazy=lazy_decoder)
    clt.wire(cross_layer_wiring(layers, cfg.input_site))
    _read_weights(clt, directory, native, lazy_decoder)
    clt.model_fingerprint = config.get("model_fingerprint") or {}  # {}: files that record none
    return clt.to(device).eval()


def _site_of(hook: str, directory: Path) -> str:
    for site, name in _HOOKS.items():
        if hook == name:
            return site
    raise StoreError(f"{directory} reads {hook!r}; interp's CLTs read one of {sorted(_HOOKS.values())}")


@torch.no_grad()
def _read_weights(clt: CrossLayerTranscoder, directory: Path, native: bool, lazy: bool) -> None:
    cfg = clt.cfg
    for i in range(clt.n_layers):
        with safe_open(str(_encoder_file(directory, i, native)), framework="pt", device="cpu") as f:
            clt.W_enc[i].copy_(f.get_tensor(f"W_enc_{i}").float().T)
            clt.b_enc[i].copy_(f.get_tensor(f"b_enc_{i}").float())
            clt.b_dec[i].copy_(f.get_tensor(f"b_dec_{i}").float())
            if cfg.activation == "jumprelu":
                clt.threshold[i].copy_(f.get_tensor(f"threshold_{i}").float())
            elif cfg.activation == "topk" and cfg.topk_over == "all" and i == 0:
                clt.topk_threshold.copy_(f.get_tensor("threshold_0").float()[0])
        if cfg.skip_connection:
            with safe_open(str(directory / f"W_skip_{i}.safetensors"), framework="pt", device="cpu") as f:
                clt.W_skip[i].copy_(f.get_tensor(f"W_skip_{i}").float().T)
    reader = LazyDecoder(directory, clt.n_layers)
    if lazy:
        clt.attach_lazy_decoder(reader)
    else:
        clt.W_dec.copy_(pairs_from_sources([reader.rows(i) for i in range(clt.n_layers)]))


__all__ = ["LazyDecoder", "circuit_tracer_reads", "is_clt_dir", "load_clt", "read_clt_config", "save_clt"]
