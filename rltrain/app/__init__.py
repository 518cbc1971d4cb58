"""The application: subcommands, the Hydra entry point, sweeps and summaries (`rltrain.cli` is its
front door). Everything here may import every layer below; nothing below imports this."""
