"""A plan with many long pool names: the hard case for the report's charts."""

from __future__ import annotations

from pathlib import Path

import yaml


def long_named_plan(tmp_path: Path, pools: int = 14) -> tuple[Path, Path]:
    """A catalog of ``pools`` pools with long names, each of its own GPU product, and one
    service pinned to each product, so that the plan uses every pool."""
    catalog = {
        "pools": [
            {
                "name": f"aws-p4de.24xlarge-us-east-1-capacity-block-{i:02d}",
                "cloud": "aws",
                "gpuProduct": f"NVIDIA-TEST-{i}",
                "gpus": 8,
                "memoryPerGpu": "80Gi",
                "nvlink": "all",
                "cpu": 96,
                "memory": "1152Gi",
                "price": {"perHour": 20.0 + i, "source": "test", "asOf": "2026-01-01"},
            }
            for i in range(pools)
        ]
    }
    services = [
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {
                "name": f"svc-{i}",
                "namespace": "ns",
                "annotations": {
                    "vramfit.io/gpu-product": f"NVIDIA-TEST-{i}",
                    "vramfit.io/vram-per-gpu": "40Gi",
                },
            },
            "spec": {
                "predictor": {
                    "minReplicas": 1,
                    "model": {
                        "modelFormat": {"name": "huggingface"},
                        "storageUri": "hf://Qwen/Qwen3-8B",
                        "resources": {"limits": {"nvidia.com/gpu": "2"}},
                    },
                }
            },
        }
        for i in range(pools)
    ]
    (tmp_path / "pools.yaml").write_text(yaml.safe_dump(catalog))
    (tmp_path / "isvcs.yaml").write_text(yaml.safe_dump_all(services))
    return tmp_path / "pools.yaml", tmp_path / "isvcs.yaml"
