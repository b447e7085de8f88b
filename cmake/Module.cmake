# qmeter_module(NAME DEPS dep...): one static library per src/<NAME> folder.
# Sources are globbed so that adding a file to a module needs no CMake edit.
# Public headers live in src/<NAME>/include/qmeter/<NAME>/; everything else is private.
function(qmeter_module name)
  cmake_parse_arguments(M "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  add_library(qmeter_${name} STATIC ${srcs})
  target_include_directories(qmeter_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                            PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(qmeter_${name} PUBLIC ${M_DEPS} PRIVATE ${M_PRIVATE_DEPS})
endfunction()

# qmeter_check_module_order(module...): FATAL_ERROR unless every qmeter_<module> links (publicly or
# privately) only modules listed before it.
function(qmeter_check_module_order)
  set(below "")
  foreach(module ${ARGN})
    get_target_property(deps qmeter_${module} LINK_LIBRARIES)
    foreach(dep ${deps})
      if(dep MATCHES "^qmeter_(.+)$" AND NOT CMAKE_MATCH_1 IN_LIST below)
        message(FATAL_ERROR "module '${module}' links ${dep}, which is not below it in the module order "
                            "(top-level CMakeLists.txt): move it, or drop the dependency")
      endif()
    endforeach()
    list(APPEND below ${module})
  endforeach()
endfunction()

# qmeter_test(NAME SOURCES... LIBS ...): one GoogleTest binary registered with CTest.
function(qmeter_test name)
  # PROPERTIES: more test properties as name/value pairs (a fixture, an environment, a lock).
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS;PROPERTIES" ${ARGN})
  if(NOT T_SOURCES)
    return()
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(NOT T_LABELS)
    set(T_LABELS ${name})
  endif()
  # Tests labelled timing compare times to the millisecond: they run alone (RUN_SERIAL), so on a
  # 2-core CI machine they measure instead of skipping themselves as "too busy".
  if("timing" IN_LIST T_LABELS)
    list(APPEND T_PROPERTIES RUN_SERIAL TRUE)
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST
    PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}" ${T_PROPERTIES})
  # Tests find the qmeter binary and the source tree through these (see tests/test_support.h).
  # QMETER_EXTERNAL_BIN: the qmeter binary the tests spawn comes from another build (the TSan
  # build checks in-process concurrency of a few modules and does not build every module).
  if(QMETER_EXTERNAL_BIN)
    set(bin_path ${QMETER_EXTERNAL_BIN})
  else()
    set(bin_path $<TARGET_FILE:qmeter>)
  endif()
  target_compile_definitions(${name} PRIVATE QMETER_BIN_PATH="${bin_path}"
                                             QMETER_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                                             QMETER_TEST_OUTPUT_DIR="${CMAKE_BINARY_DIR}/test-output")
  # Only tests that spawn the qmeter binary (they call qmeter_bin()) wait for it to be built, so
  # a module's unit tests build without every other module.
  foreach(src ${T_SOURCES})
    get_filename_component(src_abs ${src} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    if(NOT EXISTS ${src_abs})
      continue()
    endif()
    file(READ ${src_abs} content)
    if(content MATCHES "qmeter_bin\\(\\)" AND NOT QMETER_EXTERNAL_BIN)
      add_dependencies(${name} qmeter)
      break()
    endif()
  endforeach()
endfunction()
