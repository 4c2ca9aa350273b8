"""Mount the apps a module exports, with a runtime preference ("Runtime App Preference")."""
import skitai
import unsub

pref = skitai.pref()
pref.debug = True
pref.config.urlfile = skitai.joinpath("resources", "urllist.txt")

skitai.mount("/v1", unsub, "app", pref)
skitai.mount("/v2", (unsub, "app_v2.py"), "app", pref)
skitai.run(address="127.0.0.1", port=5000)
