from logistics_shared.migrations import run_env
from support.models import metadata

run_env(metadata)
