import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A parsed XML element: enough of a tree to read EC2's Query API answers.
struct XMLNode: Sendable {
    var name: String
    var text: String
    var children: [XMLNode]

    /// Parses `data`; nil when it is not well-formed XML.
    static func parse(_ data: [UInt8]) -> XMLNode? {
        let delegate = TreeBuilder()
        let parser = XMLParser(data: Data(data))
        parser.delegate = delegate
        guard parser.parse(), let root = delegate.stack.first?.children.first else { return nil }
        return root
    }

    /// The first child named `name`.
    func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }

    /// Children named `name`.
    func all(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }

    /// The element at a path of child names, e.g. `["instancesSet", "item", "instanceId"]`.
    func at(_ path: String...) -> XMLNode? {
        var node: XMLNode? = self
        for name in path { node = node?.child(name) }
        return node
    }

    /// The trimmed text of the element at `path`, nil when missing or empty.
    func value(_ path: String...) -> String? {
        var node: XMLNode? = self
        for name in path { node = node?.child(name) }
        let text = node?.text.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return text.isEmpty ? nil : text
    }

    /// Every element named `name` anywhere below, depth first.
    func descendants(_ name: String) -> [XMLNode] {
        children.flatMap { ($0.name == name ? [$0] : []) + $0.descendants(name) }
    }

    private final class TreeBuilder: NSObject, XMLParserDelegate {
        var stack: [XMLNode] = [XMLNode(name: "", text: "", children: [])]

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            stack.append(XMLNode(name: elementName, text: "", children: []))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            stack[stack.count - 1].text += string
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
            guard stack.count > 1 else { return }
            let done = stack.removeLast()
            stack[stack.count - 1].children.append(done)
        }
    }
}
