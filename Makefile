# ponder: the two commands of the README are `make demo` and `make test`; both set everything up.
BUILD ?= build
JOBS ?= 2

.PHONY: deps build test unit fuzz clean

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

fuzz: deps
	@bash scripts/fuzz.sh $(BUILD)/fuzz

test: unit fuzz

clean:
	rm -rf $(BUILD)
