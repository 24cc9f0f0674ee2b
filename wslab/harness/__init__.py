"""The live harness: real websockets servers and clients on loopback, measured."""
