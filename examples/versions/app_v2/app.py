def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["Hello World Ver.2 at " + env["SCRIPT_NAME"] + env["PATH_INFO"]]
