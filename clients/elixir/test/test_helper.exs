# Every test talks to the real Python worker (no mocks); logs are shown only for failing tests.
ExUnit.start(capture_log: true)
