defmodule Mix.Tasks.OptunaBridge.Install do
  @shortdoc "Creates the Python venv the optuna_bridge worker runs in"
  @moduledoc """
  Creates the virtualenv the client runs its worker in, from the worker wheel and the locked
  requirements (hashes checked) shipped in this package's `priv/python/`:

      mix optuna_bridge.install [--venv PATH] [--python PYTHON] [--force] [--priv DIR]

    * `--venv` - where to create it (default: `config :optuna_bridge, :venv`, else
      `$OPTUNA_BRIDGE_VENV`, else `_build/optuna_bridge/venv`); the client looks in the same
      place, so nothing else needs configuring.
    * `--python` - the interpreter that creates the venv (Python 3.11 or newer; default
      `python3.11`, else `python3` on `PATH`).
    * `--force` - rebuild even when the venv is up to date.
    * `--priv` - the folder holding the worker wheel and its `requirements.txt` (default: this
      package's `priv/python`, made by `make dist`), e.g. for a wheel you built yourself.

  Prints each step. Running it again does nothing while the shipped wheel and requirements are
  unchanged; after an upgrade of the client it rebuilds the venv it made before. A folder it did
  not make is never removed.
  """

  use Mix.Task

  @switches [venv: :string, python: :string, force: :boolean, priv: :string]

  @impl true
  def run(argv) do
    case OptionParser.parse(argv, strict: @switches) do
      {opts, [], []} ->
        Mix.Task.run("loadconfig")
        opts = Keyword.put_new_lazy(opts, :priv, &priv_python/0)

        case OptunaBridge.Python.install([info: &Mix.shell().info/1] ++ opts) do
          {:ok, _lines} -> :ok
          {:error, message} -> Mix.raise("optuna_bridge.install: " <> message)
        end

      {_, rest, invalid} ->
        Mix.raise(
          "optuna_bridge.install: unexpected arguments #{inspect(rest ++ Enum.map(invalid, &elem(&1, 0)))}; " <>
            "usage: mix optuna_bridge.install [--venv PATH] [--python PYTHON] [--force] [--priv DIR]"
        )
    end
  end

  # The package's own folder: the dependency's source (a path, git or Hex dependency), or this
  # project when it is the client itself.
  defp priv_python do
    root =
      Mix.Project.deps_paths()[:optuna_bridge] ||
        if Mix.Project.config()[:app] == :optuna_bridge, do: File.cwd!()

    if root,
      do: Path.join([root, "priv", "python"]),
      else: Path.join(to_string(:code.priv_dir(:optuna_bridge)), "python")
  end
end
