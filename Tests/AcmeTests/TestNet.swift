// The shared test network helpers under the names these tests use.

import AcmeTestSupport

func randomLoopback() -> String { TestNet.randomLoopback() }
func freePort(on host: String) throws -> Int { try TestNet.freePort(on: host) }
