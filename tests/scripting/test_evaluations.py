"""The host's hand-over of results from V8's thread (``v8.Evaluations``) and its own memory reading.

Each runs in a program of its own, as the host does, so that this process never starts V8.
"""

import subprocess
import sys
import textwrap

EVALUATIONS_PROGRAM = textwrap.dedent(
    """
    import contextlib, time
    from py_mini_racer import mini_racer
    from knock_sources.scripting.v8 import Evaluations, V8Loop, v8_flags

    loop = V8Loop(v8_flags(32))
    # Kept: the isolate lives as long as the stack.
    stack = contextlib.ExitStack()
    racer = loop.call(stack.enter_context, mini_racer(loop.loop))
    evaluations = Evaluations(racer)

    def values(codes):
        tasks = evaluations.start(codes)
        answers = evaluations.wait(30)
        del tasks
        return [evaluations.value(answer) for answer in answers]

    # A batch stopped before its results are in: they come later, and never
    # stand in for the results of the batch after it.
    busy = "for (const end = Date.now() + 300; Date.now() < end;); 'late'"
    tasks = evaluations.start([busy, busy])
    print(evaluations.wait(0.01))
    evaluations.stop(tasks)
    print(values(["'next'"]))
    # A batch whose results all came although its wait gave up (stopped too
    # late): the next batch waits for its own.
    tasks = evaluations.start(["1"])
    deadline = time.monotonic() + 30
    while evaluations._received < evaluations._started and time.monotonic() < deadline:
        time.sleep(0.001)
    evaluations.stop(tasks)
    print(values(["2", "3"]))
    print(values(["4"]))
    """
)


def test_results_of_a_stopped_batch_never_answer_the_next_one():
    done = subprocess.run([sys.executable, "-c", EVALUATIONS_PROGRAM], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["None", "['next']", "[2, 3]", "[4]"]


FORK_PROGRAM = textwrap.dedent(
    """
    import os
    from knock_sources.scripting.protocol import resident_bytes

    resident_bytes()
    ballast = b"x" * (64 << 20)
    with_ballast = resident_bytes()
    child = os.fork()
    if child == 0:
        del ballast
        os._exit(0 if resident_bytes() < with_ballast - (32 << 20) else 1)
    print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]), resident_bytes() >= with_ballast - (1 << 20))
    """
)


def test_a_forked_child_reads_its_own_resident_memory():
    done = subprocess.run([sys.executable, "-c", FORK_PROGRAM], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split() == ["0", "True"]
