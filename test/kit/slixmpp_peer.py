"""An independent XMPP client for interop tests: slixmpp (Python, Debian python3-slixmpp 1.8) driven by
JSON lines, run by test/kit/slixmpp.ts with /usr/bin/python3.

Configuration comes as JSON in the environment variable CXMPP_SLIXMPP:
    {"jid": "bob@a.localhost/slix", "password": "...", "host": "127.0.0.1", "port": 5222,
     "presence": true}

stdin, one JSON object per line (the ops):
    {"op": "message", "to": J, "body": B, "type": "chat", "id": I}      type and id optional
    {"op": "presence", "to": J, "type": T, "show": S, "status": X}      all optional
    {"op": "subscribe", "to": J}                                         RFC 6121 section 3.1.1
    {"op": "iq_get", "to": J, "xml": "<query xmlns='...'/>", "id": I}  the payload as XML text
    {"op": "raw", "xml": "<message .../>"}                               sent as is
    {"op": "readout", "to": J, "fields": [N], "flags": {"momentary": "true"}, "nodes": [NODEID]}
                                          XEP-0323 request_data (xep_0323 plugin); fields, flags, nodes optional
    {"op": "control", "to": J, "values": [[NAME, TYPE, VALUE]], "nodes": [NODEID]}   XEP-0325 set_request (iq)
    {"op": "control_message", "to": J, "values": [[NAME, TYPE, VALUE]]}  XEP-0325 set_command (message)
    {"op": "pubsub_subscribe", "service": S, "node": N}                  XEP-0060 subscribe (xep_0060)
    {"op": "quit"}                                                       closes the stream, exits 0

stdout, one JSON object per line:
    {"event": "ready", "jid": FULL}      after session_start (and initial presence if asked)
    {"kind": "message"|"presence"|"iq", "from", "to", "type", "id", "body", "xml"}   every stanza
                                          received, before slixmpp handles it; xml is the raw stanza
    {"event": "readout", "from", "result", "nodeId", "timestamp", "fields", "error"}   each callback of a
                                          readout: result accepted|queued|rejected|started|fields|done|failure;
                                          fields [{"name", "type", "value", "unit"}]
    {"event": "control", "from", "result", "error"}   the response to a control set (result "OK", …)
    {"event": "subscribed", "service", "node"}          a pubsub subscription was accepted
    {"event": "pubsub_item", "from", "node", "id", "payload"}   a XEP-0060 event notification's item
    {"event": "error", "message": M}      an op that could not be carried out, or failed auth
    {"event": "disconnected"}             the stream ended; the process exits after it

Plain text auth without TLS is enabled on purpose: the test server has no certificate and runs on
loopback only (see docs/INTEROP.md).
"""

import asyncio
import json
import os
import sys
import threading
import xml.etree.ElementTree as ET

from slixmpp import ClientXMPP


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Peer(ClientXMPP):
    def __init__(self, jid, password, presence):
        super().__init__(jid, password)
        self.initial_presence = presence
        # Report every stanza as it arrives, before any handler (or slixmpp's automatic replies) runs.
        self.add_filter("in", self.report)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("disconnected", self.on_disconnected)
        for plugin in ("xep_0060", "xep_0323", "xep_0325"):
            self.register_plugin(plugin)
        self.add_event_handler("pubsub_publish", self.on_pubsub_publish)

    def report(self, stanza):
        name = stanza.tag.split("}")[-1]
        if name in ("message", "presence", "iq"):
            emit(
                {
                    "kind": name,
                    "from": stanza["from"].full,
                    "to": stanza["to"].full,
                    "type": stanza["type"],
                    "id": stanza["id"],
                    "body": stanza["body"] if name == "message" else "",
                    "xml": str(stanza),
                }
            )
        return stanza

    async def on_start(self, _event):
        if self.initial_presence:
            self.send_presence()
        emit({"event": "ready", "jid": self.boundjid.full})

    def on_failed_auth(self, _event):
        emit({"event": "error", "message": "failed_auth"})
        self.disconnect()

    def on_connection_failed(self, error):
        # slixmpp would retry forever; a test wants to know now.
        emit({"event": "error", "message": f"connection_failed: {error}"})
        self.loop.stop()

    def on_pubsub_publish(self, msg):
        item = msg["pubsub_event"]["items"]["item"]
        payload = item.xml.find("*")
        emit(
            {
                "event": "pubsub_item",
                "from": msg["from"].full,
                "node": msg["pubsub_event"]["items"]["node"],
                "id": item["id"],
                "payload": ET.tostring(payload, encoding="unicode") if payload is not None else "",
            }
        )

    def on_readout(self, from_jid, result, nodeId=None, timestamp=None, fields=None, error_msg=None):
        emit(
            {
                "event": "readout",
                "from": str(from_jid),
                "result": result,
                "nodeId": nodeId,
                "timestamp": timestamp,
                "fields": [
                    {"name": f.get("name"), "type": f.get("typename"), "value": f.get("value"), "unit": f.get("unit")}
                    for f in (fields or [])
                ],
                "error": error_msg,
            }
        )

    def on_control(self, from_jid, result, nodeIds=None, fields=None, error_msg=None):
        emit({"event": "control", "from": str(from_jid), "result": result, "error": error_msg})

    async def subscribe_pubsub(self, service, node):
        try:
            await self["xep_0060"].subscribe(service, node, timeout=10)
            emit({"event": "subscribed", "service": service, "node": node})
        except Exception as error:
            emit({"event": "error", "message": f"pubsub_subscribe: {type(error).__name__}: {error}"})

    def on_disconnected(self, _event):
        emit({"event": "disconnected"})
        self.loop.stop()

    def apply(self, line):
        """Carries out one op line; runs on the event loop."""
        try:
            op = json.loads(line)
            kind = op.get("op")
            if kind == "message":
                msg = self.make_message(mto=op["to"], mbody=op.get("body"), mtype=op.get("type", "chat"))
                if "id" in op:
                    msg["id"] = op["id"]
                msg.send()
            elif kind == "presence":
                self.send_presence(
                    pto=op.get("to"), ptype=op.get("type"), pshow=op.get("show"), pstatus=op.get("status")
                )
            elif kind == "subscribe":
                self.send_presence(pto=op["to"], ptype="subscribe")
            elif kind == "iq_get":
                iq = self.make_iq_get(ito=op["to"])
                if "id" in op:
                    iq["id"] = op["id"]
                iq.append(ET.fromstring(op["xml"]))
                # The reply is reported by the "in" filter like any stanza; the future only has to be
                # consumed so that an error reply or a timeout is not logged as an unretrieved exception.
                future = iq.send(timeout=30)
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            elif kind == "raw":
                self.send_raw(op["xml"])
            elif kind == "readout":
                self["xep_0323"].request_data(
                    self.boundjid,
                    op["to"],
                    self.on_readout,
                    nodeIds=op.get("nodes"),
                    fields=op.get("fields"),
                    flags=op.get("flags"),
                )
            elif kind == "control":
                values = [tuple(v) for v in op["values"]]
                self["xep_0325"].set_request(self.boundjid, op["to"], self.on_control, values, op.get("nodes"))
            elif kind == "control_message":
                values = [tuple(v) for v in op["values"]]
                self["xep_0325"].set_command(self.boundjid, op["to"], values)
            elif kind == "pubsub_subscribe":
                asyncio.ensure_future(self.subscribe_pubsub(op["service"], op["node"]))
            elif kind == "quit":
                self.disconnect()
            else:
                emit({"event": "error", "message": f"unknown op: {line.strip()}"})
        except Exception as error:  # report and keep going: one bad op must not end the peer
            emit({"event": "error", "message": f"{type(error).__name__}: {error} in {line.strip()}"})


def main():
    config = json.loads(os.environ["CXMPP_SLIXMPP"])
    peer = Peer(config["jid"], config["password"], config.get("presence", True))
    peer["feature_mechanisms"].unencrypted_plain = True
    peer.connect(address=(config["host"], int(config["port"])), force_starttls=False, disable_starttls=True)

    def read_stdin():
        # A thread, because asyncio cannot read a pipe on stdin portably; each line goes to the loop.
        for line in sys.stdin:
            if line.strip():
                peer.loop.call_soon_threadsafe(peer.apply, line)
        # stdin closed: the test process is gone or done, so leave too.
        peer.loop.call_soon_threadsafe(peer.disconnect)

    threading.Thread(target=read_stdin, daemon=True).start()
    peer.loop.run_forever()


if __name__ == "__main__":
    main()
