defmodule OptunaBridge.StudyLifecycleTest do
  @moduledoc """
  The study lifecycle keeps its word through restarts (issue 22): deleting is final (item 3), one
  study has one owner on a shared worker (item 4), a timed-out call's effect is reported (item
  5), and what a study holds for its worker is bounded (item 8).
  """
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias OptunaBridge.{Error, SharedWorker, Study, TestSupport}

  @space [x: [type: "float", low: 0.0, high: 1.0]]

  @moduletag :tmp_dir

  defp start(name, opts) do
    TestSupport.start_study!(%{name: name}, @space, opts, id: name)
  end

  defp restarted(study, old) do
    TestSupport.wait_until(
      fn ->
        match?(%{status: :ready, os_pid: pid} when pid not in [nil, old], Study.info(study))
      end,
      60_000
    )
  end

  for storage <- [:memory, :sqlite] do
    @storage storage

    test "delete/2 is final (#{storage}): a worker restart does not bring the study back", %{
      tmp_dir: dir
    } do
      study =
        start("gone",
          worker_args: TestSupport.storage_args(@storage, dir, "l.db"),
          checkpoint_every: 1,
          restart_backoff: 10
        )

      {:ok, trials} = Study.ask(study, 5)
      for t <- Enum.take(trials, 3), do: {:ok, _} = Study.tell(study, t.number, 1.0)
      {:ok, _} = Study.persist(study)

      :ok = Study.delete(study)

      capture_log(fn ->
        %{os_pid: old} = Study.info(study)
        TestSupport.signal(old, "KILL")
        restarted(study, old)
      end)

      assert {:ok, studies} = Study.list(study)
      refute Enum.any?(studies, &(&1["study"] == "gone"))
      assert {:error, %Error{kind: :study_not_found}} = Study.trials(study)
      assert {:error, %Error{kind: :study_not_found}} = Study.ask(study)
    end
  end

  describe "one study, one owner on a shared worker" do
    test "a second Study on the same name is refused at start; the caller lives" do
      shared = start_supervised!({SharedWorker, [id: :one_owner]})
      first = start("owned", worker: shared)

      # start_link: linked, and still this test process is not taken down
      assert {:error, %Error{kind: :study_exists, message: message}} =
               Study.start_link(%{name: "owned"}, @space, worker: shared)

      assert message =~ "one owner"
      # another name on the same worker is fine
      other = start("other", worker: shared)
      assert {:ok, _} = Study.ask(other)

      :ok = Study.stop(first)

      {:ok, again} =
        TestSupport.wait_until(fn ->
          with {:error, _} <- Study.start(%{name: "owned"}, @space, worker: shared), do: nil
        end)

      # the claim ended with its owner (the worker itself then says the study exists: it was
      # stopped, not deleted)
      assert {:error, %Error{kind: :study_exists, code: -32_002}} = Study.await_ready(again)
    end

    test "in a pool, the same name lands on the same worker and is refused too" do
      pool = :"pool_#{System.unique_integer([:positive])}"
      start_supervised!({OptunaBridge.Pool, name: pool, size: 2})
      _first = start("pooled", pool: pool)

      assert {:error, %Error{kind: :study_exists}} =
               Study.start(%{name: "pooled"}, @space, pool: pool)
    end
  end

  describe "a call that timed out" do
    test "an ask: the trials it created are told fail and errors/1 says so" do
      study = start("late-ask", [])
      %{os_pid: os_pid} = Study.info(study)
      TestSupport.signal(os_pid, "STOP")

      capture_log(fn ->
        assert {:error, %Error{kind: :timeout}} = Study.ask(study, 3, timeout: 200)
        TestSupport.signal(os_pid, "CONT")

        assert [%Error{kind: :timeout, method: "ask", data: %{"numbers" => [0, 1, 2]}}] =
                 TestSupport.wait_until(fn ->
                   Study.errors(study)
                   |> Enum.filter(&(&1.method == "ask"))
                   |> TestSupport.nonempty()
                 end)
      end)

      {:ok, trials} = Study.trials(study)
      assert length(trials) == 3
      assert Enum.all?(trials, &(&1.state == :fail))
      assert Enum.all?(trials, &(&1.user_attrs["optuna_bridge"] == "ask timed out in the client"))
    end

    test "a tell: applied late, reported in errors/1; its retry is :trial_finished" do
      study = start("late-tell", [])
      {:ok, [trial]} = Study.ask(study)
      %{os_pid: os_pid} = Study.info(study)
      TestSupport.signal(os_pid, "STOP")

      capture_log(fn ->
        assert {:error, %Error{kind: :timeout}} =
                 Study.tell(study, trial.number, 0.5, timeout: 200)

        TestSupport.signal(os_pid, "CONT")

        assert [%Error{kind: :timeout, data: %{"applied" => true, "number" => n}}] =
                 TestSupport.wait_until(fn ->
                   Study.errors(study)
                   |> Enum.filter(&(&1.method == "tell"))
                   |> TestSupport.nonempty()
                 end)

        assert n == trial.number
      end)

      assert {:error, %Error{kind: :trial_finished}} = Study.tell(study, trial.number, 0.5)
    end

    test "a call that timed out while queued (worker restarting) is never sent" do
      study = start("late-queued", restart_backoff: 1_500)

      capture_log(fn ->
        %{os_pid: old} = Study.info(study)
        TestSupport.signal(old, "KILL")
        TestSupport.wait_until(fn -> Study.info(study).status == :restarting end)
        assert {:error, %Error{kind: :timeout}} = Study.ask(study, 2, timeout: 100)
        restarted(study, old)
      end)

      assert {:ok, []} = Study.trials(study)
    end
  end

  test "max_pending bounds calls and tell_async while the worker is away: :overloaded" do
    study = start("bounded", max_pending: 3, restart_backoff: 60_000)

    capture_log(fn ->
      %{os_pid: old} = Study.info(study)
      TestSupport.signal(old, "KILL")
      TestSupport.wait_until(fn -> Study.info(study).status == :restarting end)

      for n <- 1..3, do: assert(:ok = Study.tell_async(study, n, 1.0))

      # once the study has counted them, the caller is refused at once (a cast that raced the
      # count is refused by the study and kept in errors/1)
      assert {:error, %Error{kind: :overloaded, data: %{"max_pending" => 3}}} =
               TestSupport.wait_until(fn ->
                 with :ok <- Study.tell_async(study, 99, 1.0), do: nil
               end)

      assert {:error, %Error{kind: :overloaded, method: "ask"}} = Study.ask(study)
      assert Enum.all?(Study.errors(study), &(&1.kind == :overloaded))
    end)

    assert_raise ArgumentError, fn -> Study.start(%{name: "x"}, @space, max_pending: 0) end
  end

  test "a tell the worker refused is not reported as :trial_lost after a crash" do
    study = start("refused-tell", restart_backoff: 10)
    {:ok, [trial]} = Study.ask(study)
    {:ok, _} = Study.tell(study, trial.number, 1.0)
    {:ok, _} = Study.persist(study)
    # refused: no such trial, and a second tell of a finished one
    assert {:error, %Error{kind: :trial_not_found}} = Study.tell(study, 99, 1.0)
    assert {:error, %Error{kind: :trial_finished}} = Study.tell(study, trial.number, 2.0)

    capture_log(fn ->
      %{os_pid: old} = Study.info(study)
      TestSupport.signal(old, "KILL")
      restarted(study, old)
    end)

    assert Study.errors(study) == []
    assert {:ok, [%{state: :complete, values: [1.0]}]} = Study.trials(study)
  end
end
