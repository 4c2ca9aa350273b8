"""The spec's first example: a WSGI app on http://127.0.0.1:5000/ (port: --port N or SKITAI_PORT)."""


def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["Hello World"]


app.use_reloader = True
app.debug = True

if __name__ == "__main__":
    import skitai

    skitai.mount("/", app)
    skitai.run(address="127.0.0.1", port=5000)
