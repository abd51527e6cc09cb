defmodule OptunaBridge.SupervisionTest do
  @moduledoc """
  Compiles and runs the supervision example of `README.md` (the code block after the
  `<!-- supervision-example -->` marker), so the README cannot drift from working code.
  """
  use ExUnit.Case, async: true

  alias OptunaBridge.{Study, Worker}
  alias OptunaBridge.TestSupport

  @readme Path.expand("../../README.md", __DIR__)
  @external_resource @readme

  [_, after_marker] = String.split(File.read!(@readme), "<!-- supervision-example -->", parts: 2)
  [_, example, _] = String.split(after_marker, ~r/^```.*$/m, parts: 3)
  Code.compile_string(example, @readme)

  @space %{x: [type: "float", low: -5.0, high: 5.0]}

  setup do
    start_supervised!(%{
      id: MyApp.Supervisor,
      start: {MyApp.Application, :start, [:normal, []]},
      type: :supervisor
    })

    :ok
  end

  test "studies under the DynamicSupervisor: named, optimized, restarted, stopped" do
    {:ok, a} = MyApp.Studies.start_study("a", @space)
    {:ok, _b} = MyApp.Studies.start_study("b", @space, framing: :packet4)

    for name <- ["a", "b"], _ <- 1..5 do
      study = MyApp.Studies.via(name)
      {:ok, [%{number: n, params: %{"x" => x}}]} = Study.ask(study)
      :ok = Study.tell_async(study, n, x * x)
    end

    assert {:ok, trials} = Study.trials(MyApp.Studies.via("b"))
    assert length(trials) == 5

    # A crash of the study process: the supervisor starts a new one (a fresh in-memory study);
    # the old worker sees its stdin close and exits.
    %{os_pid: old_os_pid} = Study.info(a)
    Process.exit(a, :kill)

    new_a =
      TestSupport.wait_until(fn ->
        case Registry.lookup(MyApp.StudyRegistry, "a") do
          [{pid, _}] when pid != a -> pid
          _ -> nil
        end
      end)

    assert {:ok, [%{number: 0}]} = Study.ask(new_a)
    TestSupport.wait_until(fn -> not Worker.os_alive?(old_os_pid) end)

    %{os_pid: b_os_pid} = Study.info(MyApp.Studies.via("b"))
    assert :ok = MyApp.Studies.stop_study("b")
    refute Worker.os_alive?(b_os_pid)
    assert {:error, :not_found} = MyApp.Studies.stop_study("b")
  end
end
