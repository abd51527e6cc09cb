defmodule OptunaBridge.MixProject do
  use Mix.Project

  @version "0.1.0"
  # The repository's public address; the project has no published URL yet, so this is where it
  # is expected to live. Change it here only.
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

  # Zero required Hex dependencies: Hex is not reachable where this client is built and tested.
  # `:telemetry` is used when the application that depends on this one brings it.
  defp deps, do: []

  defp package do
    [
      licenses: ["MIT"],
      links: %{
        "Source" => "#{@source_url}/tree/main/clients/elixir",
        "Protocol" => "#{@source_url}/blob/main/protocol/PROTOCOL.md"
      },
      files: ~w(lib mix.exs README.md LICENSE)
    ]
  end

  defp docs do
    [
      main: "readme",
      source_ref: "v#{@version}",
      source_url: @source_url,
      extras: ["README.md"],
      groups_for_modules: [
        "Running studies": [
          OptunaBridge,
          OptunaBridge.Study,
          OptunaBridge.Trial,
          OptunaBridge.Error
        ],
        "Sharing workers": [OptunaBridge.SharedWorker, OptunaBridge.Pool],
        Observability: [OptunaBridge.Telemetry]
      ]
    ]
  end
end
