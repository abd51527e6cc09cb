defmodule OptunaBridge.ClientIdTest do
  @moduledoc """
  A restarted study process (a restarted BEAM) gets back the trials it left running, through the
  client id the study passes with each `ask`.
  """
  use ExUnit.Case, async: true

  alias OptunaBridge.{ClientId, Study, TestSupport, Trial}

  doctest OptunaBridge.ClientId

  @space [x: [type: "float", low: 0.0, high: 1.0]]

  defp start(config, opts) do
    TestSupport.start_study!(config, @space, opts, id: make_ref())
  end

  @tag :tmp_dir
  test "a restarted study continues its running trials", %{tmp_dir: dir} do
    url = "sqlite:///" <> Path.join(dir, "s.db")
    config = %{name: "resume", load_if_exists: true}
    first = start(config, worker_args: ["--storage", url])
    {:ok, [a, b]} = Study.ask(first, 2)
    {:ok, _} = Study.tell(first, b.number, 0.5)
    {:ok, trials} = Study.trials(first)
    assert Enum.all?(trials, &(&1.extra["client"] == ClientId.default("resume")))
    :ok = Study.stop(first)

    second = start(config, worker_args: ["--storage", url])
    {:ok, [again, new]} = Study.ask(second, 2)
    assert again.number == a.number and again.params == a.params
    assert again.extra["resumed"] == true
    assert new.extra == %{} and new.number == 2
    :ok = Study.stop(second)

    other = start(config, worker_args: ["--storage", url], client: "someone-else")
    {:ok, [fresh]} = Study.ask(other)
    assert fresh.number == 3
    :ok = Study.stop(other)

    none = start(config, worker_args: ["--storage", url], client: false)
    {:ok, [%Trial{number: 4}]} = Study.ask(none)
    {:ok, trials} = Study.trials(none)
    assert Enum.at(trials, 4).extra == %{}
  end

  test "resumed trials the study still holds are not handed out twice" do
    held = %{3 => %{"x" => 1}}
    resumed = %Trial{number: 3, extra: %{"resumed" => true}}
    other = %Trial{number: 4, extra: %{"resumed" => true}}
    assert ClientId.not_held([resumed, other], held) == [other]
    assert ClientId.not_held([resumed], %{}) == [resumed]
    assert ClientId.with_client(~s({"client":"x"}), ~s("y")) == ~s({"client":"x"})
    assert ClientId.json(false) == nil
    assert ClientId.json(nil) == nil
    assert byte_size(ClientId.default(String.duplicate("s", 200))) == 128
  end

  test "a bad client option raises in the caller" do
    assert_raise ArgumentError, fn -> Study.start(%{name: "x"}, @space, client: "") end
    assert_raise ArgumentError, fn -> Study.start(%{name: "x"}, @space, client: 5) end
  end
end
