"""The real graphs of the 128 px configurations: export, fold, lint and ORT parity.

Kept apart from the 64 px and 256 px files so each stays short; see
``test_graph_export``.
"""

from __future__ import annotations

import pytest

from tests.networks.test_graph_export import check_export, check_parity, export_config

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1"),
]


@pytest.mark.parametrize("config", ["lia-128s", "vicoface-128s"])
def test_128_config_exports_lint_clean_and_matches_torch(config, tmp_path):
    report, num_scales = export_config(config, tmp_path)
    check_export(report, num_scales)
    check_parity(report)
