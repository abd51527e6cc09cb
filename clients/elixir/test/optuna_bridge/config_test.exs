defmodule OptunaBridge.ConfigTest do
  @moduledoc "The interpreter is resolved at run time; `:env` and `:cd` reach the worker."
  # changes application and OS environment: not async
  use ExUnit.Case, async: false

  alias OptunaBridge.{Error, Study, Worker}

  @space %{x: [type: "float", low: 0.0, high: 1.0]}

  setup do
    saved_env = System.get_env("OPTUNA_BRIDGE_PYTHON")
    saved_config = Application.get_env(:optuna_bridge, :python)

    on_exit(fn ->
      if saved_env, do: System.put_env("OPTUNA_BRIDGE_PYTHON", saved_env)

      if saved_config,
        do: Application.put_env(:optuna_bridge, :python, saved_config),
        else: Application.delete_env(:optuna_bridge, :python)
    end)

    %{python: saved_env}
  end

  test "python: option, then config, then OPTUNA_BRIDGE_PYTHON, then python3 on PATH", %{
    python: python
  } do
    assert Worker.python(python: "/opt/py/bin/python") == "/opt/py/bin/python"
    Application.put_env(:optuna_bridge, :python, "/from/config/python")
    assert Worker.python([]) == "/from/config/python"
    Application.delete_env(:optuna_bridge, :python)
    assert Worker.python([]) == python
    System.delete_env("OPTUNA_BRIDGE_PYTHON")
    assert Worker.python([]) == System.find_executable("python3")
    assert Worker.python(python: "sh") == System.find_executable("sh")
  end

  test "a missing interpreter is a start error that says where it looked" do
    assert {:error, %Error{kind: :start_failed, message: message}} =
             Worker.open(python: "/nonexistent/python")

    assert message =~ "/nonexistent/python"
  end

  test ":cd is the worker's directory (a relative SQLite path lands there)" do
    dir = Path.join(System.tmp_dir!(), "ob-cd-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    study =
      start_supervised!(
        {Study,
         {%{name: "cd"}, @space, [cd: dir, worker_args: ["--storage", "sqlite:///rel.db"]]}}
      )

    assert :ok = Study.await_ready(study)
    assert File.exists?(Path.join(dir, "rel.db"))
  end

  @tag :linux
  test ":env reaches the worker's environment (read back from /proc)" do
    study = start_supervised!({Study, {%{name: "env"}, @space, [env: [{"OB_TEST_MARK", "on"}]]}})

    assert :ok = Study.await_ready(study)
    %{os_pid: os_pid} = Study.info(study)
    environ = File.read!("/proc/#{os_pid}/environ") |> String.split(<<0>>)
    assert "OB_TEST_MARK=on" in environ
  end

  test "bad :env and :cd raise in the caller" do
    assert_raise ArgumentError, fn -> Study.start(%{name: "e"}, @space, env: [{"A", 1}]) end
    assert_raise ArgumentError, fn -> Study.start(%{name: "e"}, @space, env: "A=1") end
    assert_raise ArgumentError, fn -> Study.start(%{name: "e"}, @space, cd: 'dir') end
  end
end
