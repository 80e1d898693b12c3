import threading
import time

import pytest

from edgemm.runtime.sinks import ThreadedSink


class SlowSink(ThreadedSink):
    name = "slow"

    def __init__(self, lossless: bool, fail_at: int | None = None) -> None:
        self.handled: list[int] = []
        self.fail_at = fail_at
        super().__init__(lossless=lossless)

    def handle(self, result: int) -> None:
        if result == self.fail_at:
            raise RuntimeError(f"cannot handle {result}")
        time.sleep(0.005)
        self.handled.append(result)


@pytest.mark.parametrize("lossless", [False, True])
def test_threaded_sink_skips_to_the_newest_unless_lossless(lossless):
    sink = SlowSink(lossless)
    for i in range(50):
        sink.put(i)
    sink.close()
    assert sink.handled[-1] == 49  # the last result is always handled before close returns
    if lossless:
        assert sink.handled == list(range(50)) and sink.skipped == 0
    else:
        assert len(sink.handled) < 50 and sink.skipped == 50 - len(sink.handled)
        assert sink.handled == sorted(sink.handled)


def test_lossless_put_does_not_hang_when_the_sink_has_died():
    sink = SlowSink(lossless=True, fail_at=3)
    done = threading.Event()

    def feed():
        for i in range(10):
            sink.put(i)
        done.set()

    threading.Thread(target=feed, daemon=True).start()
    assert done.wait(5.0)
    with pytest.raises(RuntimeError, match="cannot handle 3"):
        sink.close()


def test_a_full_disk_under_save_ends_the_run_with_one_line_and_keeps_nothing(onnx_bundle, easy_clips, tmp_path,
                                                                            capsys):
    """ENOSPC from the real kernel path: the recorder's temporary file is /dev/full."""
    from edgemm.cli import main

    target = tmp_path / "out.mp4"
    (tmp_path / ".out.mp4.partial.mp4").symlink_to("/dev/full")
    clip = next(iter(easy_clips.values()))
    assert main(["run", str(onnx_bundle), "--video", str(clip), "--quiet", "--save", str(target)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"edgemm run: error: --save: cannot write {target}: No space left on device; the recording " \
                      "was not kept"
    assert not target.exists() and list(tmp_path.iterdir()) == []
