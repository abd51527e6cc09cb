# Every test talks to the real Python worker (no mocks); logs are shown only for failing tests.
#
# `report` is being added to the worker; until its handler exists, the tests tagged :report are
# excluded (with a note) rather than failing.
handlers = Path.wildcard(Path.expand("../../../bridge_worker/handlers/*.py", __DIR__))
has_report? = Enum.any?(handlers, &(File.read!(&1) =~ ~r/rpc_method\("report"/))

exclude =
  if has_report? do
    []
  else
    IO.puts("note: the worker has no `report` method yet; tests tagged :report are excluded")
    [:report]
  end

ExUnit.start(capture_log: true, exclude: exclude)
