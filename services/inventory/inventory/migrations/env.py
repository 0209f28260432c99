from inventory.models import metadata
from logistics_shared.migrations import run_env

run_env(metadata)
