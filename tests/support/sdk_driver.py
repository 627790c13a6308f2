"""Drive an official Segment or RudderStack SDK against a server: ``python sdk_driver.py <request.json>``.

Run in a subprocess so that each test gets the SDK version it asks for
(``PYTHONPATH`` puts an older one first) and the SDK's own threads and
module-level sessions never leak into the test process. The request names
the SDK (``segment`` or ``rudder``), the ``host``, the ``write_key``, the
``mode`` (``sync``: each call is posted at once, errors raise; ``queued``:
the SDK's consumer thread posts the batch with its own retries, then
``flush``) and the ``calls`` (``{"method", "kwargs"}``). It prints
``{"version", "errors"}`` as JSON.
"""

import json
import sys


def load(sdk):
    if sdk == "segment":
        from segment.analytics import Client
        from segment.analytics.version import VERSION
    else:
        from rudderstack.analytics import Client
        from rudderstack.analytics.version import VERSION
    return Client, VERSION


def main(path):
    with open(path) as handle:
        request = json.load(handle)
    client_class, version = load(request["sdk"])
    errors = []
    options = dict(request.get("options", {}))
    if request["mode"] == "sync":
        options["sync_mode"] = True
    else:
        options["on_error"] = lambda error, batch: errors.append(str(error))
    client = client_class(request["write_key"], host=request["host"], **options)
    for call in request["calls"]:
        try:
            getattr(client, call["method"])(**call["kwargs"])
        except Exception as exc:  # the SDK's own error, reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")
    if request["mode"] != "sync":
        client.flush()
        client.join()
    print(json.dumps({"version": version, "errors": errors}))


if __name__ == "__main__":
    main(sys.argv[1])
