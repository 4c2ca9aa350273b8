"""Several apps from one file and a static directory ("Mount Multiple WSGI Apps And Static Directories")."""
from flask import Flask, url_for


def app1(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["Hello World"]


app1.use_reloader = True
app1.debug = True

app2 = Flask(__name__)
app2.use_reloader = True
app2.debug = True


@app2.route("/")
def index():
    return "Hello World from Flask, see " + url_for("hello")


@app2.route("/hello")
def hello():
    return "Hello"


if __name__ == "__main__":
    import skitai

    skitai.mount("/t1", __file__, "app1")
    skitai.mount("/t2", __file__, "app2")
    skitai.mount("/", "static")
    skitai.run(address="127.0.0.1", port=5000)
