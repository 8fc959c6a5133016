"""The `verl.plugins` entry point: verl imports this module on `import verl`, in every process.

That is what makes registration happen inside the Ray workers (the TaskRunner, the reward-loop
workers), which import verl but never our launcher. setup.cfg declares:

    [options.entry_points]
    verl.plugins =
        longwriter = longwriter.engines.verl.plugin

verl swallows an exception raised here (it logs at DEBUG), so a broken plugin shows up later
as "Unknown reward manager: longwriter"; `longwriter.engines.verl.validate` imports this module
directly, so a dry run reports the real error. This runs while `verl/__init__` is still
executing: only modules that need nothing from verl's top-level namespace beyond DataProto are
imported here, which holds for the three below.
"""

from longwriter.engines.verl import advantage, reward, trainer  # noqa: F401  (reward, trainer register on import)

advantage.register()
