defmodule OptunaBridge.WarmStartTest do
  @moduledoc "`Study.copy_trials/3` (the worker's `copy_trials`) against the real worker."
  use ExUnit.Case, async: true

  alias OptunaBridge.{Error, Study}

  @space [x: [type: "float", low: 0.0, high: 1.0]]

  test "a study on a shared worker learns from another study's trials" do
    worker = start_supervised!({OptunaBridge.SharedWorker, []})
    source = start_supervised!({Study, {%{name: "ws-src"}, @space, [worker: worker]}}, id: :src)
    target = start_supervised!({Study, {%{name: "ws-dst"}, @space, [worker: worker]}}, id: :dst)
    :ok = Study.await_ready(source)
    :ok = Study.await_ready(target)

    {:ok, _} =
      Study.add_trials(source, [
        %{params: %{x: 0.2}, value: 1.0},
        %{params: %{x: 0.4}, value: 2.0},
        %{params: %{x: 0.6}, state: :pruned}
      ])

    assert {:ok, %{"copied" => 2, "skipped" => 0, "numbers" => [0, 1]}} =
             Study.copy_trials(target, "ws-src")

    assert {:ok, %{"copied" => 1}} =
             Study.copy_trials(target, "ws-src", states: [:pruned], limit: 1, params_only: true)

    {:ok, [queued]} = Study.ask(target)
    assert queued.params == %{"x" => 0.6}

    assert {:error, %Error{kind: :study_not_found}} = Study.copy_trials(target, "nope")
    assert_raise ArgumentError, fn -> Study.copy_trials(target, "ws-src", states: [:running]) end
    assert_raise ArgumentError, fn -> Study.copy_trials(target, "ws-src", states: []) end
    assert_raise ArgumentError, fn -> Study.copy_trials(target, "ws-src", limit: 0) end
    assert_raise ArgumentError, fn -> Study.copy_trials(target, "") end
  end
end
