"""Two versions of an app, each with its own static directory at the same mount point."""
import skitai

skitai.mount("/v1", "app_v1/static")
skitai.mount("/v1", "app_v1/app")
skitai.mount("/v2", "app_v2/static")
skitai.mount("/v2", "app_v2/app")
skitai.run(address="127.0.0.1", port=5000)
