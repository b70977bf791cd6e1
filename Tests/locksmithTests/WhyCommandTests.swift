import _TestSupport
import XCTest
