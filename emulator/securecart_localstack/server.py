"""LocalStack's Twisted gateway server, bound to the GATEWAY_LISTEN address instead of every interface.

LocalStack 4.14's own Twisted server ignores the host part of GATEWAY_LISTEN for IPv4 and listens
on 0.0.0.0, which would expose an unauthenticated emulator to the network, and when the port is
taken it logs the error and still reports "Ready." while something else answers on the port. This
server listens only where asked and exits at once when it cannot.
"""

import os
import sys

from localstack.runtime.server.core import RuntimeServerPlugin

SERVER_NAME = "securecart-twisted"
EXIT_CANNOT_LISTEN = 98


def _loopback_server():
    from rolo.serving.twisted import TwistedGateway
    from twisted.internet import reactor, ssl
    from twisted.internet.error import CannotListenError

    from localstack.aws.serving.twisted import TLSMultiplexerFactory
    from localstack.runtime.server.twisted import TwistedRuntimeServer

    class LoopbackTwistedRuntimeServer(TwistedRuntimeServer):
        def register(self, gateway, listen, ssl_creds=None):
            site = TwistedGateway(gateway)
            factory = site
            if ssl_creds:
                cert_file_name, key_file_name = ssl_creds
                context_factory = ssl.DefaultOpenSSLContextFactory(key_file_name, cert_file_name)
                context_factory.getContext().use_certificate_chain_file(cert_file_name)
                factory = TLSMultiplexerFactory(context_factory, False, site)
            for host_and_port in listen:
                try:
                    reactor.listenTCP(host_and_port.port, factory, interface=host_and_port.host)
                except CannotListenError as e:
                    # Raising here would leave LocalStack's service threads running without a
                    # gateway; the starter needs the process to end so that it sees the failure.
                    sys.stderr.write(f"ERROR: cannot listen on {host_and_port}: {e.socketError}\n")
                    sys.stderr.flush()
                    os._exit(EXIT_CANNOT_LISTEN)

    return LoopbackTwistedRuntimeServer()


class LoopbackTwistedServerPlugin(RuntimeServerPlugin):
    name = SERVER_NAME

    def load(self, *args, **kwargs):
        return _loopback_server()
