# mentor_kd_parsers: the part of the native core that reads untrusted files before libtorch sees
# anything (safetensors headers, config.json, bounded text-file reads). It needs neither libtorch
# nor Node-API, so the core links it and the libFuzzer targets (native/fuzz/CMakeLists.txt) build it
# with clang and sanitizers from this same list.
set(MENTOR_KD_PARSER_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/io/safetensors_header.cc
  ${CMAKE_CURRENT_LIST_DIR}/io/config_fields.cc
  ${CMAKE_CURRENT_LIST_DIR}/io/text_file.cc
  ${CMAKE_CURRENT_LIST_DIR}/t5/config.cc)

function(mentor_kd_parsers_library name)
  add_library(${name} STATIC ${MENTOR_KD_PARSER_SOURCES})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  find_package(nlohmann_json 3 REQUIRED)
  target_link_libraries(${name} PUBLIC nlohmann_json::nlohmann_json)
endfunction()
