"""Evaluation: sample-quality metrics and figures."""

from fdrl_jax.evaluation.toy_metrics import energy_distance, sliced_wasserstein2


def run_eval(config, workdir: str) -> dict:
    """`--mode=eval`: toy metrics for vector data, image metrics for images."""
    if config.model.name == "resnet" or config.data.name in _image_sources():
        from fdrl_jax.evaluation.image_eval import run_image_eval

        return run_image_eval(config, workdir)
    from fdrl_jax.evaluation.toy_metrics import run_eval as run_toy_eval

    return run_toy_eval(config, workdir)


def _image_sources():
    from fdrl_jax.data import IMAGE_SOURCES

    return IMAGE_SOURCES


__all__ = ["energy_distance", "run_eval", "sliced_wasserstein2"]
