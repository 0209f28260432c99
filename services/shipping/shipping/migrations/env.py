from logistics_shared.migrations import run_env
from shipping.models import metadata

run_env(metadata)
