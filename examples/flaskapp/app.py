"""A Flask app under a prefix ("About Mount Point & App Routing"): url_for() includes /flaskapp."""
from flask import Flask, url_for

app = Flask(__name__)


@app.route("/hello")
def hello():
    return "Hello"


@app.route("/")
def index():
    return f'<a href="{url_for("hello")}">hello</a> <a href="{url_for("static", filename="x.css")}">css</a>'


if __name__ == "__main__":
    import skitai

    skitai.mount("/flaskapp", app)
    skitai.run(address="127.0.0.1", port=5000)
