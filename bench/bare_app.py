"""The baseline: a bare Flask endpoint that reads the body and answers 204."""

from flask import Flask, request

app = Flask(__name__)


@app.post("/integrations/receive/<token>")
def receive(token):
    """Read the body, as any webhook endpoint must, and accept it."""
    request.get_data()
    return "", 204
