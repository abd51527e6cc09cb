defmodule OptunaBridge.MixProject do
  use Mix.Project

  def project do
    [
      app: :optuna_bridge,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: deps()
    ]
  end

  def application do
    [
      extra_applications: [:logger],
      mod: {OptunaBridge.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  # Zero Hex dependencies: Hex is not reachable where this client is built and tested.
  defp deps, do: []
end
