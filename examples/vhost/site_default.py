def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["this is site_default for " + env.get("HTTP_HOST", "")]
