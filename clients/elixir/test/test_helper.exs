# Every test talks to the real Python worker (no mocks); logs are shown only for failing tests.
# A test's deadline is generous (5 min, not ExUnit's 60 s): it bounds a hang; on a machine whose
# every core is busy, a test of a few hundred round trips to its worker took over a minute.
ExUnit.start(capture_log: true, timeout: 300_000)
