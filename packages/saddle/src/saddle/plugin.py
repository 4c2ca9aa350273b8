from skitai.plugins import Plugin

plugin = Plugin("saddle")
