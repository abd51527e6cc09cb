defmodule OptunaBridge.PythonTest do
  @moduledoc """
  Where the worker's venv is, how `mix optuna_bridge.install` makes it, and the protocol check at
  start. The install runs here against a tiny stand-in wheel (a `bridge_worker` that only answers
  `--version`), so it needs no network and no real lock; scripts/elixir_fresh_project.sh runs the
  real one from a fresh Mix project.
  """
  # changes application and OS environment: not async
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias OptunaBridge.{Error, Python, Study, Worker}

  setup do
    saved = {System.get_env("OPTUNA_BRIDGE_VENV"), Application.get_env(:optuna_bridge, :venv)}
    dir = Path.join(System.tmp_dir!(), "ob-python-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)

    on_exit(fn ->
      File.rm_rf!(dir)
      {env, config} = saved

      if env,
        do: System.put_env("OPTUNA_BRIDGE_VENV", env),
        else: System.delete_env("OPTUNA_BRIDGE_VENV")

      if config,
        do: Application.put_env(:optuna_bridge, :venv, config),
        else: Application.delete_env(:optuna_bridge, :venv)
    end)

    System.delete_env("OPTUNA_BRIDGE_VENV")
    Application.delete_env(:optuna_bridge, :venv)
    %{dir: dir}
  end

  test "the venv: option, then config, then OPTUNA_BRIDGE_VENV, then _build/optuna_bridge/venv" do
    assert Python.venv() == Path.expand("_build/optuna_bridge/venv")
    assert Python.venv_python() == nil, "the default venv is used only when it exists"
    System.put_env("OPTUNA_BRIDGE_VENV", "/from/env")
    assert Python.venv() == "/from/env"
    assert Python.venv_python() == "/from/env/bin/python"
    Application.put_env(:optuna_bridge, :venv, "/from/config")
    assert Python.venv() == "/from/config"
    assert Python.venv(venv: "rel") == Path.expand("rel")
  end

  test "a configured venv that does not exist is a start error saying what to run" do
    System.put_env("OPTUNA_BRIDGE_VENV", "/nonexistent/venv")
    saved = System.get_env("OPTUNA_BRIDGE_PYTHON")
    System.delete_env("OPTUNA_BRIDGE_PYTHON")

    try do
      assert {:error, %Error{kind: :start_failed, message: message}} = Worker.open([])
      assert message =~ "/nonexistent/venv/bin/python"
      assert message =~ "mix optuna_bridge.install"
    after
      if saved, do: System.put_env("OPTUNA_BRIDGE_PYTHON", saved)
    end
  end

  test "a worker of another protocol is refused with both versions and what to run", %{dir: dir} do
    fake = Path.join(dir, "python")

    File.write!(fake, """
    #!/bin/sh
    echo '{"jsonrpc":"2.0","method":"ready","params":{"protocol":99,"worker":"9.9.9"}}'
    exec cat >/dev/null
    """)

    File.chmod!(fake, 0o755)

    {:ok, study} =
      Study.start(%{name: "mismatch"}, [x: [type: "float", low: 0.0, high: 1.0]], python: fake)

    assert {:error, %Error{kind: :start_failed, message: message}} = Study.await_ready(study)
    assert message =~ "speaks protocol 99"
    assert message =~ "optuna-bridge 9.9.9"
    assert message =~ "speaks protocol #{Python.protocol()}"
    assert message =~ "mix optuna_bridge.install"
  end

  describe "install/1" do
    # Each install makes a venv (seconds on an idle machine, far more on a loaded one).
    @tag timeout: 600_000
    test "makes the venv, says what it did, then does nothing; replaces only its own", %{
      dir: dir
    } do
      priv = fake_priv(dir, 1)
      venv = Path.join(dir, "venv")

      printed =
        capture_io(fn ->
          Mix.Tasks.OptunaBridge.Install.run(["--venv", venv, "--priv", priv])
        end)

      assert [created, installed, answers, runs] = String.split(printed, "\n", trim: true)
      assert created =~ "created #{venv} with Python 3."
      assert installed =~ "fake_worker-0.1.0-py3-none-any.whl and 0 locked packages"
      assert answers =~ "worker answers: optuna-bridge fake, protocol 1"
      assert runs =~ "#{venv}/bin/python"

      printed =
        capture_io(fn ->
          {:ok, [line]} = Python.install(venv: venv, priv: priv, info: &IO.puts/1)
          assert line =~ "is up to date"
        end)

      assert printed =~ "is up to date (optuna-bridge fake, protocol 1, optuna none)"
      assert Python.venv_python(venv: venv) == Path.join(venv, "bin/python")

      # Another shipped worker (here: of the wrong protocol) replaces the venv made before; the
      # half-made venv is not stamped as installed, and stays replaceable.
      {:error, message} = Python.install(venv: venv, priv: fake_priv(dir, 2))
      assert message =~ "does not speak protocol 1"
      assert File.read!(Path.join(venv, ".optuna_bridge_install")) == "incomplete"

      foreign = Path.join(dir, "mine")
      File.mkdir_p!(foreign)
      File.write!(Path.join(foreign, "keep.txt"), "user data")
      {:error, message} = Python.install(venv: foreign, priv: priv)
      assert message =~ "was not made by `mix optuna_bridge.install`"
      assert File.read!(Path.join(foreign, "keep.txt")) == "user data"
    end

    test "no wheel and a bad interpreter are errors before anything is made", %{dir: dir} do
      {:error, message} = Python.install(venv: Path.join(dir, "v"), priv: dir)
      assert message =~ "found 0 wheel(s)"
      assert message =~ "make dist"

      priv = fake_priv(dir, 1)

      {:error, message} =
        Python.install(venv: Path.join(dir, "v"), priv: priv, python: "/bin/true")

      assert message =~ "is not a Python 3.11 or newer"
      refute File.exists?(Path.join(dir, "v"))
    end
  end

  test "the Mix task refuses unknown arguments and reports a failed install", %{dir: dir} do
    assert_raise Mix.Error, ~r/usage: mix optuna_bridge.install/, fn ->
      Mix.Tasks.OptunaBridge.Install.run(["--nope"])
    end

    assert_raise Mix.Error, ~r/optuna_bridge.install: expected one worker wheel/, fn ->
      Mix.Tasks.OptunaBridge.Install.run(["--priv", dir, "--venv", Path.join(dir, "v")])
    end
  end

  # A priv/python with a stand-in worker wheel whose `bridge_worker --version` says `protocol`.
  defp fake_priv(dir, protocol) do
    priv = Path.join(dir, "priv-#{protocol}")
    File.mkdir_p!(priv)
    name = "fake_worker-0.1.0-py3-none-any.whl"
    info = "fake_worker-0.1.0.dist-info"

    files = [
      {"bridge_worker/__init__.py", ""},
      {"bridge_worker/__main__.py",
       "print('optuna-bridge fake')\nprint('protocol #{protocol}')\nprint('optuna none')\n"},
      {"#{info}/METADATA", "Metadata-Version: 2.1\nName: fake-worker\nVersion: 0.1.0\n"},
      {"#{info}/WHEEL",
       "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
      {"#{info}/RECORD",
       "bridge_worker/__init__.py,,\nbridge_worker/__main__.py,,\n#{info}/METADATA,,\n" <>
         "#{info}/WHEEL,,\n#{info}/RECORD,,\n"}
    ]

    {:ok, {_, zip}} =
      :zip.create(~c"#{name}", Enum.map(files, fn {p, c} -> {~c"#{p}", c} end), [:memory])

    File.write!(Path.join(priv, name), zip)
    hash = :crypto.hash(:sha256, zip) |> Base.encode16(case: :lower)

    File.write!(
      Path.join(priv, "requirements.txt"),
      "# stand-in\n./#{name} \\\n    --hash=sha256:#{hash}\n"
    )

    priv
  end
end
