"""`--backend-config default-max-batch-size=N` reaches ONNX auto-complete, as on Triton: a
model without config.pbtxt that can batch gets max_batch_size N (4 without the flag)."""
import os
import shutil

import pytest

from conftest import ROOT, start_despina, stop

pytestmark = pytest.mark.skipif(os.environ.get("DESPINA_TEST_TARGET") == "triton",
                                reason="the reference Triton has no ONNX Runtime backend")


@pytest.mark.parametrize("flags,expected", [
    ([], 4),
    (["--backend-config=default-max-batch-size=16"], 16),
    (["--backend-config", "onnxruntime,default-max-batch-size=2"], 2),
])
def test_default_max_batch_size(tmp_path, flags, expected):
    import tritonclient.http as httpclient

    shutil.copytree(ROOT / "tests" / "models_extra" / "onnx_autocomplete", tmp_path / "onnx_autocomplete")
    s = start_despina(tmp_path, extra_args=flags)
    try:
        c = httpclient.InferenceServerClient(s.http)
        assert c.get_model_config("onnx_autocomplete")["max_batch_size"] == expected
        c.close()
    finally:
        stop(s)
