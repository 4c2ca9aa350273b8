import json


def app(env, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"version": 2, "count": len(app.config["urllist"])})]
