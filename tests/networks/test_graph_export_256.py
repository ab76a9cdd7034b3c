"""The 256 px configurations' real graphs: export, fold, lint and ORT parity.

About a minute each on a 2-core CPU (the parity check runs the 256 px
generator ~30 times), hence ``slow``; ``vicocam bench model`` records the
same figures with timings. See ``test_graph_export``.
"""

from __future__ import annotations

import pytest

from tests.networks.test_graph_export import check_export, check_parity, export_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1"),
]


@pytest.mark.parametrize("config", ["lia-256", "vicoface-256"])
def test_256_config_exports_lint_clean_and_matches_torch(config, tmp_path):
    report, num_scales = export_config(config, tmp_path)
    check_export(report, num_scales)
    check_parity(report)
