defmodule OptunaBridge.Python do
  @moduledoc """
  Where the worker's Python comes from, and how `mix optuna_bridge.install` makes it.

  The client ships the worker it speaks to: `make dist` (in the optuna-bridge repository) puts the
  worker's wheel and the runtime part of the project's lock (every pin with its hashes) in this
  application's `priv/python/`, and the Hex package carries them. `install/1` turns them into a
  virtualenv, by default `_build/optuna_bridge/venv` under the project directory (`:venv` in
  `config :optuna_bridge` or `$OPTUNA_BRIDGE_VENV` move it); `OptunaBridge.Worker` runs that
  venv's interpreter when no interpreter is configured (`:python` / `$OPTUNA_BRIDGE_PYTHON`).

  Nothing here runs while a study is served: the venv is resolved with two `File` checks when a
  worker is spawned.
  """

  @protocol 1
  @stamp ".optuna_bridge_install"
  @min_python {3, 11}

  @doc "The protocol version this client speaks (the worker's `ready` frame must announce it)."
  @spec protocol() :: pos_integer()
  def protocol, do: @protocol

  @doc """
  The worker venv's directory, absolute: `opts[:venv]`, else `config :optuna_bridge, :venv`, else
  `$OPTUNA_BRIDGE_VENV`, else `_build/optuna_bridge/venv` (relative paths are taken from the
  current directory, the Mix project's root under `mix`).
  """
  @spec venv(keyword()) :: String.t()
  def venv(opts \\ []) do
    Path.expand(configured_venv(opts) || Path.join(["_build", "optuna_bridge", "venv"]))
  end

  defp configured_venv(opts),
    do:
      opts[:venv] || Application.get_env(:optuna_bridge, :venv) ||
        System.get_env("OPTUNA_BRIDGE_VENV")

  @doc """
  The interpreter a worker runs when none is configured: the venv's `bin/python` when a venv is
  configured (even if it does not exist yet, so the start error names it) or when the default
  venv exists; otherwise `nil`.
  """
  @spec venv_python(keyword()) :: String.t() | nil
  def venv_python(opts \\ []) do
    python = Path.join([venv(opts), "bin", "python"])
    if configured_venv(opts) != nil or File.exists?(python), do: python
  end

  @doc "What to tell a person whose worker cannot start or speaks another protocol."
  @spec install_hint() :: String.t()
  def install_hint,
    do:
      "run `mix optuna_bridge.install` to create the worker's venv (#{Path.relative_to_cwd(venv())})"

  @doc """
  Why a worker whose `ready` frame announces another protocol is refused, and what to run.
  """
  @spec mismatch(map()) :: String.t()
  def mismatch(ready) do
    worker = if is_binary(ready["worker"]), do: " (optuna-bridge #{ready["worker"]})", else: ""

    "the worker#{worker} speaks protocol #{inspect(ready["protocol"])}, this client " <>
      "(optuna_bridge #{Application.spec(:optuna_bridge, :vsn)}) speaks protocol #{@protocol}: " <>
      install_hint() <>
      " with the worker this client ships, or point :python at a worker " <>
      "of protocol #{@protocol}"
  end

  @doc """
  Creates (or updates) the worker's venv from `priv/python/` and returns the lines that say what
  was done. Options: `:venv` (see `venv/1`), `:python` (the interpreter that creates the venv;
  default `python3.11`, else `python3` on `PATH`; at least 3.11), `:priv` (the folder holding the
  wheel and `requirements.txt`; default this application's `priv/python`), `:force` (rebuild
  even when up to date), `:info` (a one-argument function called with each line as it happens).

  Idempotent: a venv whose stamp holds the shipped requirements (they name the wheel's hash) is
  left alone. A venv made by an earlier install is replaced; any other existing, non-empty
  folder is refused, never deleted.
  """
  @spec install(keyword()) :: {:ok, [String.t()]} | {:error, String.t()}
  def install(opts \\ []) do
    info = Keyword.get(opts, :info, fn _ -> :ok end)
    venv = venv(opts)
    priv = Path.expand(opts[:priv] || Application.app_dir(:optuna_bridge, "priv/python"))

    with {:ok, requirements, wheel} <- shipped(priv),
         digest = File.read!(requirements),
         :build <- up_to_date(venv, digest, opts[:force]),
         :ok <- clear(venv),
         {:ok, python, version} <- base_python(opts[:python]) do
      log = fn line ->
        info.(line)
        line
      end

      steps = [
        fn -> create_venv(python, version, venv, log) end,
        fn -> pip_install(venv, priv, requirements, wheel, log) end,
        fn -> check_worker(venv, log) end,
        fn -> stamp(venv, digest, log) end
      ]

      run_steps(steps, [])
    else
      {:up_to_date, lines} ->
        Enum.each(lines, info)
        {:ok, lines}

      {:error, _} = error ->
        error
    end
  end

  defp run_steps([], lines), do: {:ok, Enum.reverse(lines)}

  defp run_steps([step | rest], lines) do
    case step.() do
      {:ok, line} -> run_steps(rest, [line | lines])
      {:error, _} = error -> error
    end
  end

  defp shipped(priv) do
    requirements = Path.join(priv, "requirements.txt")

    case {Path.wildcard(Path.join(priv, "*.whl")), File.exists?(requirements)} do
      {[wheel], true} ->
        {:ok, requirements, wheel}

      {wheels, _} ->
        {:error,
         "expected one worker wheel and requirements.txt in #{priv}, found " <>
           "#{length(wheels)} wheel(s): build them with `make dist` in the optuna-bridge " <>
           "repository (the Hex package ships them)"}
    end
  end

  defp up_to_date(venv, digest, force) do
    stamp = Path.join(venv, @stamp)

    with false <- force == true,
         {:ok, ^digest} <- File.read(stamp),
         true <- File.exists?(Path.join([venv, "bin", "python"])) do
      {:up_to_date,
       ["optuna_bridge.install: #{venv} is up to date (#{worker_versions(venv)}); nothing to do"]}
    else
      _ -> :build
    end
  end

  defp clear(venv) do
    cond do
      not File.exists?(venv) ->
        :ok

      File.exists?(Path.join(venv, @stamp)) ->
        File.rm_rf!(venv)
        :ok

      File.dir?(venv) and File.ls!(venv) == [] ->
        :ok

      true ->
        {:error,
         "#{venv} exists and was not made by `mix optuna_bridge.install`: it is left " <>
           "alone; remove it yourself or choose another place (--venv, config :optuna_bridge, " <>
           ":venv or OPTUNA_BRIDGE_VENV)"}
    end
  end

  defp base_python(nil) do
    case System.find_executable("python3.11") || System.find_executable("python3") do
      nil -> {:error, "no python3.11 or python3 on PATH: pass --python /path/to/python3.11"}
      python -> base_python(python)
    end
  end

  defp base_python(python) do
    path =
      if String.contains?(python, "/"),
        do: Path.expand(python),
        else: System.find_executable(python)

    probe = "import sys; print('%d.%d' % sys.version_info[:2])"

    with true <- is_binary(path) and File.exists?(path),
         {out, 0} <- System.cmd(path, ["-c", probe], stderr_to_stdout: true),
         [{major, ""}, {minor, ""}] <-
           out |> String.trim() |> String.split(".") |> Enum.map(&Integer.parse/1),
         true <- {major, minor} >= @min_python do
      {:ok, path, "#{major}.#{minor}"}
    else
      _ ->
        {min_major, min_minor} = @min_python

        {:error,
         "#{python} is not a Python #{min_major}.#{min_minor} or newer: pass --python " <>
           "/path/to/python3.11"}
    end
  end

  defp create_venv(python, version, venv, log) do
    File.mkdir_p!(Path.dirname(venv))

    case System.cmd(python, ["-m", "venv", venv], stderr_to_stdout: true) do
      {_, 0} ->
        # Marked as ours at once: a later run may replace a venv whose install failed halfway.
        File.write!(Path.join(venv, @stamp), "incomplete")
        {:ok, log.("optuna_bridge.install: created #{venv} with Python #{version} (#{python})")}

      {out, status} ->
        {:error, "#{python} -m venv #{venv} failed (exit #{status}): #{out}"}
    end
  end

  # One pip run checks every file against the lock's hashes, the worker's wheel included (its
  # line in requirements.txt is relative to priv, hence `cd:`).
  defp pip_install(venv, priv, requirements, wheel, log) do
    args =
      ~w(-m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r) ++
        [requirements]

    case System.cmd(Path.join([venv, "bin", "python"]), args, cd: priv, stderr_to_stdout: true) do
      {_, 0} ->
        count = requirements |> File.read!() |> String.split("\n") |> Enum.count(&locked?/1)

        {:ok,
         log.(
           "optuna_bridge.install: installed #{Path.basename(wheel)} and #{count - 1} locked " <>
             "packages (hashes checked) from #{priv}"
         )}

      {out, status} ->
        {:error, "pip install into #{venv} failed (exit #{status}):\n#{out}"}
    end
  end

  defp locked?(line), do: line != "" and not String.starts_with?(line, [" ", "#"])

  defp check_worker(venv, log) do
    versions = worker_versions(venv)

    if versions =~ "protocol #{@protocol}" do
      {:ok, log.("optuna_bridge.install: worker answers: #{versions}")}
    else
      {:error, "the installed worker does not speak protocol #{@protocol}: #{versions}"}
    end
  end

  defp worker_versions(venv) do
    python = Path.join([venv, "bin", "python"])

    case System.cmd(python, ["-m", "bridge_worker", "--version"], stderr_to_stdout: true) do
      {out, 0} -> out |> String.split("\n", trim: true) |> Enum.join(", ")
      {out, status} -> "`#{python} -m bridge_worker --version` failed (exit #{status}): #{out}"
    end
  end

  defp stamp(venv, digest, log) do
    File.write!(Path.join(venv, @stamp), digest)

    {:ok,
     log.(
       "optuna_bridge.install: the client now runs #{Path.join([venv, "bin", "python"])} " <>
         "(config :optuna_bridge, :python or OPTUNA_BRIDGE_PYTHON override it)"
     )}
  end
end
