"""A Bottle app under a prefix: get_url() includes the mount point /bottle."""
import bottle

app = bottle.Bottle()


@app.route("/hello/<name>", name="hello")
def hello(name):
    return f"Hello {name}"


@app.route("/")
def index():
    return f'<a href="{app.get_url("hello", name="world")}">hello</a>'


if __name__ == "__main__":
    import skitai

    skitai.mount("/bottle", app)
    skitai.run(address="127.0.0.1", port=5000)
