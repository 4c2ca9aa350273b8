from skitai.plugins import Plugin

plugin = Plugin("gateway")
