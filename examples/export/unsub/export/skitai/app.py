import json


def app(env, start_response):
    urls = [{"name": name, "url": url} for name, url, *_ in app.config["urllist"]]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"version": 1, "debug": getattr(app, "debug", False), "urls": urls})]
