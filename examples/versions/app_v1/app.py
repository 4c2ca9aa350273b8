def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["Hello World Ver.1 at " + env["SCRIPT_NAME"] + env["PATH_INFO"]]
