defmodule OptunaBridge.MixProject do
  use Mix.Project

  @version "0.1.0"
  # The repository's public address, the one place it is written for the package (README's
  # absolute links must start with it: test/optuna_bridge/package_test.exs). The project has no
  # published URL yet: set the real one here and in README.md before `mix hex.publish`.
  @source_url "https://github.com/optuna-bridge/optuna-bridge"

  def project do
    [
      app: :optuna_bridge,
      version: @version,
      elixir: "~> 1.14",
      description:
        "Optuna hyperparameter optimization from Elixir: optimize/3, pruning, pooled Python " <>
          "workers behind ports, crash recovery; zero required dependencies.",
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: deps(),
      package: package(),
      docs: docs(),
      source_url: @source_url,
      homepage_url: @source_url,
      test_coverage: [
        summary: [threshold: 90],
        ignore_modules: [:telemetry, OptunaBridge.TestSupport]
      ],
      dialyzer: [plt_local_path: ".dialyzer"]
    ]
  end

  def application do
    [
      extra_applications: [:logger, :crypto],
      mod: {OptunaBridge.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  # Zero required Hex dependencies. Where Hex is installed (a user's project, `mix hex.build`), the
  # package declares `:telemetry` as optional (used when the application brings it, see
  # `OptunaBridge.Telemetry`) and ex_doc for `MIX_ENV=docs mix docs`. Where Hex is absent (this
  # repository's CI: Hex is unreachable) neither is declared, so nothing has to be fetched for
  # `mix compile` and `mix test`.
  defp deps do
    if Code.ensure_loaded?(Hex) do
      [
        {:telemetry, "~> 1.0", optional: true},
        {:ex_doc, "~> 0.34", only: :docs, runtime: false}
      ]
    else
      []
    end
  end

  # Elixir >= 1.15 reads the preferred environments here (1.14 ignores it: run
  # `MIX_ENV=docs mix docs`).
  def cli, do: [preferred_envs: [docs: :docs]]

  defp package do
    [
      licenses: ["MIT"],
      links: %{
        "Source" => "#{@source_url}/tree/main/clients/elixir",
        "Protocol" => "#{@source_url}/blob/main/protocol/PROTOCOL.md"
      },
      # What the tarball holds. priv/python (the worker's wheel and locked requirements) is made by
      # `make dist` at the repository's top level: run it before `mix hex.build`.
      # test/optuna_bridge/package_test.exs checks the list: real files inside this folder only.
      files: ~w(lib priv .formatter.exs mix.exs README.md LICENSE CHANGELOG.md)
    ]
  end

  defp docs do
    [
      main: "readme",
      source_ref: "v#{@version}",
      source_url: @source_url,
      extras: ["README.md", "CHANGELOG.md"],
      groups_for_modules: [
        "Running studies": [
          OptunaBridge,
          OptunaBridge.Study,
          OptunaBridge.Trial,
          OptunaBridge.Error
        ],
        "Sharing workers": [OptunaBridge.SharedWorker, OptunaBridge.Pool],
        "Setting up the worker": [OptunaBridge.Python, Mix.Tasks.OptunaBridge.Install],
        Observability: [OptunaBridge.Telemetry]
      ]
    ]
  end
end
