"""Chatter a user cannot act on is filtered where edgemm triggers it; real warnings still reach them."""

import logging
import warnings

import torch

from edgemm._noise import quiet_onnx_export, quiet_torchao_import


def test_the_shared_batch_axis_notice_is_dropped_and_other_warnings_pass():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_onnx_export():
            warnings.warn("# The axis name: batch will not be used, since it shares the same shape constraints "
                          "with another axis: batch.", UserWarning, stacklevel=1)
            warnings.warn("something the user should see", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something the user should see"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_torchaos_enum_notice_is_dropped_from_torchs_pytree_log():
    quiet_torchao_import()
    logger = logging.getLogger("torch.utils._pytree")
    filters = list(logger.filters)
    quiet_torchao_import()  # idempotent
    assert logger.filters == filters
    seen = _Records()
    logger.addHandler(seen)
    try:
        logger.warning("%s is an Enum subclass and is now natively supported by torch.compile as an opaque value "
                       "type. Calling register_constant() ...", "<enum 'KernelPreference'>")
        logger.warning("a real pytree problem")
    finally:
        logger.removeHandler(seen)
    assert seen.messages == ["a real pytree problem"]


def test_exporting_the_student_to_onnx_prints_no_exporter_chatter(tmp_path):
    from edgemm.export.onnx import to_onnx
    from edgemm.models import create_model

    model = create_model("test_gated", num_classes=3).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        to_onnx(model, tmp_path / "m.onnx", model.example_inputs(2))
    assert not [w for w in caught if "axis name" in str(w.message)]
    assert (tmp_path / "m.onnx").stat().st_size > 0 and torch.is_tensor(model.example_inputs(2)[0])
